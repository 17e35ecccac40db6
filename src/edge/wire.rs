//! The request head in, and the response out, in one JavaScript call each: crossing between wasm
//! and JavaScript costs per call and per string, and a request touches a dozen headers each way.

use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::web_sys;

use crate::error::ApiError;
use crate::http::{split_url, HttpRequest, HttpResponse, Method};

#[wasm_bindgen(inline_js = r#"
// The method, URL and headers as lines: method, URL, then name and value for each header. None
// of them can hold a line feed (a serialised URL percent-encodes it; header names are tokens, and
// the Headers class refuses one in a value), so the lines split back exactly.
export function requestHead(request) {
  let head = request.method + '\n' + request.url;
  for (const [name, value] of request.headers) head += '\n' + name + '\n' + value;
  return head;
}

// A Response from the status, the headers as lines (name, value, ...) and the body bytes, which
// are a view into wasm memory: copied before the Response keeps them.
export function newResponse(status, headerLines, hasBody, body) {
  const headers = new Headers();
  if (headerLines.length > 0) {
    const lines = headerLines.split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) headers.append(lines[i], lines[i + 1]);
  }
  return new Response(hasBody ? body.slice() : null, { status, headers });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head_lines(request: &web_sys::Request) -> String;
    #[wasm_bindgen(js_name = newResponse, catch)]
    fn new_response(
        status: u16,
        header_lines: &str,
        has_body: bool,
        body: &[u8],
    ) -> Result<web_sys::Response, worker::wasm_bindgen::JsValue>;
}

/// The request without its body: method, path, query and headers (names lower-case, as the
/// Headers class gives them).
pub fn request_head(request: &web_sys::Request) -> Result<HttpRequest, ApiError> {
    let lines = request_head_lines(request);
    let bad = || ApiError::invalid(None, "bad request head");
    let mut lines = lines.split('\n');
    let method = lines.next().ok_or_else(bad)?;
    let url = lines.next().ok_or_else(bad)?;
    // The runtime's serialised URL, split without the `url` crate (see `http::split_url`).
    let (path, query) = split_url(url).ok_or_else(|| ApiError::invalid(None, "bad request URL"))?;
    let mut headers = Vec::new();
    while let Some(name) = lines.next() {
        let value = lines.next().ok_or_else(bad)?;
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    Ok(HttpRequest {
        method: Method::parse(method),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers,
        body: Vec::new(),
    })
}

/// The Worker response for `response`. A header with a line feed (which the Headers class would
/// refuse anyway) is an error, so it can never shift the lines.
pub fn to_js_response(response: &HttpResponse) -> worker::Result<web_sys::Response> {
    let mut lines = String::new();
    for (name, value) in &response.headers {
        if name.contains('\n') || value.contains('\n') {
            return Err(worker::Error::RustError(format!(
                "header {name:?} holds a line feed"
            )));
        }
        if !lines.is_empty() {
            lines.push('\n');
        }
        lines.push_str(name);
        lines.push('\n');
        lines.push_str(value);
    }
    // A 204 must have a null body, not an empty one: the Response constructor refuses the latter.
    new_response(
        response.status,
        &lines,
        !response.body.is_empty(),
        &response.body,
    )
    .map_err(worker::Error::from)
}
