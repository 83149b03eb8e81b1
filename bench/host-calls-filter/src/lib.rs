//! What the host calls of a cached-token request cost in Envoy, apart from the filter's own
//! computing (issue 11): this filter buffers the body as the noop floor (`bench/noop-filter`) does
//! and then makes the same host calls mcp-edge makes for a request whose token is cached — and
//! nothing else. Each group of calls is switched on by name in the plugin configuration, so
//! `cargo bench -p mcp-edge-tests --bench host_calls` can take one group away at a time and read
//! its cost from Envoy's CPU per request.
//!
//! Configuration: `{"probe_groups": ["request_headers", "clock", ...]}` (every other field is
//! ignored, so mcp-edge's own configuration with this field added works); missing means all.
//! The groups, with the calls mcp-edge makes on that path (`filter/src/glue/request.rs`):
//! - `request_headers`: the whole request header map copied in once (`get_http_request_headers`);
//! - `clock`: the time, once per request callback (head and body: 2);
//! - `header_writes`: `authorization` removed and the identity assertion `x-mcp-identity` set (2);
//! - `access_log`: the 5 `mcp_edge.*` filter-state properties (`set_property`; 1 at the head);
//! - `counters`: 2 counters incremented (ids defined once, as mcp-edge caches them);
//! - `shared_data`: the tenant's token bucket read and written back with its CAS;
//! - `response_headers`: the 2 `RateLimit` headers set on the answer.
//!
//! Built for wasm32-wasip1 only; elsewhere the crate is empty.

#![deny(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod filter {
    use std::rc::Rc;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, MetricType};

    #[allow(unsafe_code)] // the SDK's entry point macro exports `_initialize`
    mod entry {
        proxy_wasm::main! {{
            proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
                Box::new(super::ProbeRoot::default())
            });
        }}
    }

    /// The groups of host calls this worker makes per request.
    #[derive(Clone, Copy)]
    struct Groups {
        request_headers: bool,
        clock: bool,
        header_writes: bool,
        access_log: bool,
        counters: bool,
        shared_data: bool,
        response_headers: bool,
    }

    impl Groups {
        const ALL: Groups = Groups {
            request_headers: true,
            clock: true,
            header_writes: true,
            access_log: true,
            counters: true,
            shared_data: true,
            response_headers: true,
        };

        /// The groups named in `probe_groups`, all when the field is missing; None if the
        /// configuration is not JSON or a name is not a group (the configuration is refused then,
        /// rather than measuring less than asked).
        fn from_config(config: &[u8]) -> Option<Groups> {
            let config: serde_json::Value = serde_json::from_slice(config).ok()?;
            let Some(names) = config.get("probe_groups") else {
                return Some(Groups::ALL);
            };
            let mut groups = Groups {
                request_headers: false,
                clock: false,
                header_writes: false,
                access_log: false,
                counters: false,
                shared_data: false,
                response_headers: false,
            };
            for name in names.as_array()? {
                let flag = match name.as_str()? {
                    "request_headers" => &mut groups.request_headers,
                    "clock" => &mut groups.clock,
                    "header_writes" => &mut groups.header_writes,
                    "access_log" => &mut groups.access_log,
                    "counters" => &mut groups.counters,
                    "shared_data" => &mut groups.shared_data,
                    "response_headers" => &mut groups.response_headers,
                    _ => return None,
                };
                *flag = true;
            }
            Some(groups)
        }
    }

    #[derive(Default)]
    struct ProbeRoot {
        setup: Option<Rc<Setup>>,
    }

    /// What every request of the worker shares: its groups and the counters' ids.
    struct Setup {
        groups: Groups,
        counters: [u32; 2],
    }

    impl Context for ProbeRoot {}

    impl RootContext for ProbeRoot {
        fn on_configure(&mut self, _: usize) -> bool {
            let config = self.get_plugin_configuration().unwrap_or_default();
            let Some(groups) = Groups::from_config(&config) else {
                log::error!("probe_groups names an unknown group");
                return false;
            };
            let mut counters = [0; 2];
            for (id, name) in counters.iter_mut().zip([
                "mcp_edge_probe.ratelimit.pro.admitted",
                "mcp_edge_probe.outcome.allowed",
            ]) {
                *id = hostcalls::define_metric(MetricType::Counter, name).unwrap_or_default();
            }
            self.setup = Some(Rc::new(Setup { groups, counters }));
            true
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            let setup = self.setup.clone()?;
            Some(Box::new(ProbeRequest { setup }))
        }
    }

    /// One request: the cached-token path's host calls, by group.
    struct ProbeRequest {
        setup: Rc<Setup>,
    }

    impl Context for ProbeRequest {}

    const BUCKET_KEY: &str = "mcp_edge_probe.bucket.tenant-bench";

    /// What mcp-edge puts for the benchmark's request (contract v3: one assertion, the same
    /// claims and length as the filter's).
    const IDENTITY_HEADERS: [(&str, &str); 1] = [(
        "x-mcp-identity",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJtY3AtZWRnZSIsImF1ZCI6Im1jcC1lZGdlLWJhY2tlbmQiLCJzdWIiOiJiZW5jaC11c2VyIiwidGVuYW50X2lkIjoidGVuYW50LWJlbmNoIiwic2NvcGUiOiJtY3A6cmVhZCBtY3A6d3JpdGUiLCJkYXRhX3Njb3BlIjoiIiwidGllciI6InBybyIsImlhdCI6MTc5NTgyNzg3NiwiZXhwIjoxNzk1ODI3OTA2LCJqdGkiOiJtY3BlLTcxM2NlZTYzYjE1ZjNmNDJmZDI4NTI5ZWJlZGNlNGVhIiwiaHRtIjoiUE9TVCIsImh0cCI6Ii9tY3AiLCJtY3BfcHYiOiIyMDI1LTA2LTE4IiwiYm9keV9zaGEyNTYiOiI0N0RFUXBqOEhCU2EtX1RJbVctNUpDZXVRZVJrbTVOTXBKV1pHM2hTdUZVIn0.BiHkdR72y0jIXPa9OLWamggisninsijd3CbUYsWy6tQ",
    )];
    const LOG_PROPERTIES: [(&str, &str); 5] = [
        (
            "mcp_edge.request_id",
            "mcpe-713cee63b15f3f42fd28529ebedce4ea",
        ),
        ("mcp_edge.tenant", "tenant-bench"),
        ("mcp_edge.method", "tools/call"),
        ("mcp_edge.tool", "list_projects"),
        ("mcp_edge.outcome", "allowed"),
    ];

    impl HttpContext for ProbeRequest {
        fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
            let groups = self.setup.groups;
            if groups.clock {
                std::hint::black_box(self.get_current_time());
            }
            if groups.request_headers {
                std::hint::black_box(self.get_http_request_headers_bytes());
            }
            if groups.access_log {
                let (key, value) = LOG_PROPERTIES[0];
                let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
            }
            if end_of_stream {
                Action::Continue
            } else {
                Action::Pause
            }
        }

        fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
            if !end_of_stream {
                return Action::Pause;
            }
            let body = self.get_http_request_body(0, body_size).unwrap_or_default();
            drop(body);
            let groups = self.setup.groups;
            if groups.clock {
                std::hint::black_box(self.get_current_time());
            }
            if groups.shared_data {
                let (value, cas) = self.get_shared_data(BUCKET_KEY);
                let mut bucket = value.unwrap_or_else(|| vec![0; 24]);
                if let Some(first) = bucket.first_mut() {
                    *first = first.wrapping_add(1);
                }
                let _ = self.set_shared_data(BUCKET_KEY, Some(&bucket), cas);
            }
            if groups.header_writes {
                self.set_http_request_header("authorization", None);
                // Added, as mcp-edge does: it removed inbound x-mcp-* headers with the head.
                for (name, value) in IDENTITY_HEADERS {
                    self.add_http_request_header(name, value);
                }
            }
            if groups.counters {
                for id in self.setup.counters {
                    let _ = hostcalls::increment_metric(id, 1);
                }
            }
            if groups.access_log {
                for (key, value) in &LOG_PROPERTIES[1..] {
                    let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
                }
            }
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
            if self.setup.groups.response_headers {
                self.set_http_response_header(
                    "ratelimit-policy",
                    Some("\"pro\";q=1000000000;w=60"),
                );
                self.set_http_response_header("ratelimit", Some("\"pro\";r=999999998;t=1"));
            }
            Action::Continue
        }
    }
}
