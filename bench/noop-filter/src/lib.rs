//! The floor of the side-by-side benchmark (`scripts/bench.sh`): the least a wasm filter that reads
//! the request body can cost in Envoy. It holds the request at its headers, buffers the body,
//! copies it into the VM once (as mcp-edge does before judging it) and lets the request pass. No
//! parsing, no headers set, no stats. Built for wasm32-wasip1 only; elsewhere the crate is empty.

#![deny(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType};

    #[allow(unsafe_code)] // the SDK's entry point macro exports `_initialize`
    mod entry {
        proxy_wasm::main! {{
            proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
                Box::new(super::NoopRoot)
            });
        }}
    }

    struct NoopRoot;

    impl Context for NoopRoot {}

    impl RootContext for NoopRoot {
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(BufferBody))
        }
    }

    /// One request: wait for the whole body, read it once, continue.
    struct BufferBody;

    impl Context for BufferBody {}

    impl HttpContext for BufferBody {
        fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
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
            Action::Continue
        }
    }
}
