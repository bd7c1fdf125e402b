//! The JSON documents the verbose status calls (Status, PodSandboxStatus,
//! ContainerStatus, ImageStatus) put in their `info` maps.
//!
//! They are built field by field into a `serde_json::Value`, whose object
//! keys are kept sorted, so the text does not depend on the order the
//! fields are given in. `json!` would serialize every field through serde
//! with an error path of its own, copied into each handler that uses it.

use serde_json::{Map, Value};

/// The object of `fields`.
pub fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut object = Map::new();
    for (key, value) in fields {
        object.insert(key.to_owned(), value);
    }
    Value::Object(object)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_reads_as_the_json_literal_of_its_fields() {
        let built = object(vec![
            ("ready", Value::from(true)),
            ("endpoint", Value::from("unix:///run/docker.sock")),
            ("apiVersion", Value::from(None::<String>)),
            ("plugins", Value::from(vec!["bridge", "portmap"])),
        ]);
        let literal = json!({
            "ready": true,
            "endpoint": "unix:///run/docker.sock",
            "apiVersion": null,
            "plugins": ["bridge", "portmap"],
        });
        assert_eq!(built.to_string(), literal.to_string());
    }
}
