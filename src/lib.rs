//! driftsweep keeps a Kubernetes cluster and its Google Cloud project equal to what one
//! repository defines: it audits, reports, and deletes only what a person reviewed.

pub mod policy;
pub mod yaml;
pub mod inventory;
