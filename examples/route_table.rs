//! Prints the route table as JSON, so tests in other languages (the end-to-end role x endpoint
//! matrix) walk the very table the service enforces: `cargo run -q --example route_table`.

use edgeauth::routes::RouteId;
use serde_json::json;

fn main() {
    let routes: Vec<_> = RouteId::ALL
        .iter()
        .map(|id| {
            let spec = id.spec();
            json!({
                "id": format!("{id:?}"),
                "method": spec.method.as_str(),
                "pattern": spec.pattern,
                "credential": format!("{:?}", spec.credential),
                "requirement": format!("{:?}", spec.requirement),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&routes).expect("serialisable")
    );
}
