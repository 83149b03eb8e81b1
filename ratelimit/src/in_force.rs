//! The limits in force and the counters they are checked against, swapped as a whole when the
//! limits file changes.

use std::sync::{Arc, RwLock};

use crate::limiter::Limiter;
use crate::limits_file::LimitsConfig;

pub struct InForce {
    config: RwLock<Arc<LimitsConfig>>,
    pub limiter: Limiter,
}

impl InForce {
    pub fn new(config: LimitsConfig, limiter: Limiter) -> Self {
        Self {
            config: RwLock::new(Arc::new(config)),
            limiter,
        }
    }

    pub fn config(&self) -> Arc<LimitsConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `config` in force; counted hits stay (a counter's key does not hold its maximum).
    pub fn replace(&self, config: LimitsConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
}
