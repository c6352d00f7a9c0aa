//! driftsweep keeps a Kubernetes cluster and its Google Cloud project equal to what one
//! repository defines: it audits, reports, and deletes only what a person reviewed.

pub mod cli;
pub mod commands;
pub mod deploy;
pub mod enforce;
pub mod evaluate;
pub mod input;
pub mod inventory;
pub mod lint;
pub mod manifests;
pub mod plan;
pub mod policy;
pub mod private;
pub mod report;
pub mod settings;
pub mod yaml;
