//! JSON request bodies: `http::decode_json` (what every JSON route's `json_body` ends in) over
//! arbitrary bytes, into `serde_json::Value` and into copies of real body structs, then the error
//! response the client would get. Must never panic; it must accept exactly what serde_json accepts
//! as one JSON value, `json_body` exactly the JSON objects among them, and every refusal must be a
//! `400 invalid_request`.
#![no_main]

use edgeauth::http::{decode_json, HttpRequest, Method};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

// Copies of the private body structs of src/handlers/ (same fields, same serde attributes): one
// flat with optional fields, one nested with a list, one with the "present" deserializer, and one
// with a renamed catch-all. Keep them in step when those change.

/// src/handlers/auth.rs `LoginBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LoginBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    password: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    device_label: Option<String>,
}

/// src/handlers/authz.rs `Check`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Check {
    capability: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

/// src/handlers/authz.rs `BatchBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BatchBody {
    #[serde(default)]
    token: Option<String>,
    checks: Vec<Check>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<T>, D::Error> {
    T::deserialize(de).map(Some)
}

/// src/handlers/users.rs `UpdateBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    org_admin: Option<Option<bool>>,
}

/// src/handlers/bootstrap.rs `BootstrapBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BootstrapBody {
    #[serde(default, rename = "token")]
    _token: Option<Value>,
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

/// Decodes into `T`; a refusal must be a 400 whose response renders.
fn decode<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    match decode_json::<T>(data) {
        Ok(value) => Some(value),
        Err(error) => {
            assert_eq!(error.status_and_code(), (400, "invalid_request"));
            let response = error.to_response();
            assert_eq!(response.status, 400);
            assert!(response.json_value()["error"]["message"].is_string());
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = decode::<Value>(data);
    let reference = serde_json::from_slice::<Value>(data).ok();
    assert_eq!(
        ours.is_some(),
        reference.is_some(),
        "decode_json and serde_json disagree"
    );

    let shaped = [
        decode::<LoginBody>(data).is_some(),
        decode::<BatchBody>(data).is_some(),
        decode::<UpdateBody>(data).is_some(),
        decode::<BootstrapBody>(data).is_some(),
    ];
    if shaped.iter().any(|ok| *ok) {
        assert!(ours.is_some(), "a body struct accepted what is not JSON");
    }

    // The same bytes through the request, as a route reads them: a JSON object, nothing else.
    let mut request = HttpRequest::new(Method::Post, "/v1/auth/login")
        .header("content-type", "application/json; charset=utf-8");
    request.body = data.to_vec();
    let via_request = request.json_body::<Value>();
    if !data.is_empty() {
        let is_object = ours.as_ref().is_some_and(Value::is_object);
        assert_eq!(
            via_request.is_ok(),
            is_object,
            "json_body and decode_json disagree"
        );
    }
    if let Err(error) = via_request {
        assert_eq!(error.status_and_code().0, 400);
    }
});
