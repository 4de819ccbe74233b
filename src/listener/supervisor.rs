//! Listener reconcile: the set of bound sockets follows the Snapshot by
//! diff. A frontend that still exists keeps its socket, whatever else
//! changed; removed ones stop accepting; new ones are bound.

use std::collections::HashMap;
use std::sync::Arc;

use super::Listener;
use crate::context::Context;
use crate::table::{Frontend, Snapshot};

/// Every running Listener, by Frontend.
#[derive(Debug, Default)]
pub struct Supervisor {
    listeners: HashMap<Frontend, Listener>,
}

// === impl Supervisor ===

impl Supervisor {
    /// Brings the listeners in line with `snapshot`.
    pub fn reconcile(&mut self, snapshot: &Snapshot, ctx: &Arc<Context>) {
        self.listeners.retain(|frontend, _| snapshot.serves(frontend));
        for frontend in snapshot.frontends() {
            self.listeners
                .entry(frontend)
                .or_insert_with(|| Listener::spawn(frontend, ctx.clone()));
        }
    }

    /// Closes every listener (SIGTERM): no new connection is accepted.
    pub fn close(&mut self) {
        self.listeners.clear();
    }

    /// How many frontends have a listener.
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    /// True when no frontend is listened on.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }
}
