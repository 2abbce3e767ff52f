//! The daemon's [`Pipeline`]s: the CE ([`ce`]) and the BR ([`br`]) of mape-dataplane behind
//! the datapath threads, with the control socket's views and SIGHUP reload; the trait they
//! share is in [`api`].

pub mod api;
pub mod br;
pub mod ce;

pub use api::{FastPathPlan, MetricsFill, Pipeline, PipelineError, Shared};

use crate::config::{Role, Settings};

/// Builds the pipeline the settings ask for.
pub fn build(settings: &Settings) -> Result<Box<dyn Pipeline>, PipelineError> {
    match &settings.role {
        Role::Ce(ce) => Ok(Box::new(ce::CePipeline::new(ce, settings)?)),
        Role::Br(br) => Ok(Box::new(br::BrPipeline::new(br, settings)?)),
    }
}
