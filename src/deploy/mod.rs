//! The deploy companion mode (DESIGN "Deploy"): version, render, apply, rollout, history.

pub mod version;
