//! Validates JSON responses against an OpenAPI 3.0 document: finds the operation by method and
//! path template, takes the response schema for the status, converts OpenAPI 3.0 specifics
//! (`nullable`) to JSON Schema and validates with the `jsonschema` crate (draft 4, the dialect
//! OpenAPI 3.0 schemas are based on). Extra properties stay allowed: both RMMs return more than
//! their specs document.
use serde_json::{Value, json};
use std::path::Path;

/// Known, documented differences between a real service and its spec, allowed by name.
#[derive(Default)]
pub struct Deviations<'a> {
    /// Properties the service sends that the spec does not declare.
    pub extra: &'a [&'a str],
    /// Properties the service sends as `null` although the spec does not mark them nullable.
    pub null: &'a [&'a str],
    /// Below this instance path, values may have other types than the spec says.
    pub any_type_under: Option<&'a str>,
}

pub struct Spec {
    doc: Value,
    components: Value,
}

impl Spec {
    pub fn load(path: &Path) -> Spec {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text).expect("the spec is JSON");
        let mut components = doc.get("components").cloned().unwrap_or(json!({}));
        openapi_to_json_schema(&mut components);
        Spec { doc, components }
    }

    /// The spec's path template for a concrete path; literal segments beat templated ones.
    pub fn template(&self, path: &str) -> Option<String> {
        let segs: Vec<&str> = path
            .split('?')
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .split('/')
            .collect();
        let mut best: Option<(usize, String)> = None;
        for t in self.doc["paths"].as_object()?.keys() {
            let tsegs: Vec<&str> = t.trim_end_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = tsegs.iter().zip(&segs).all(|(a, b)| {
                if a.starts_with('{') && a.ends_with('}') {
                    !b.is_empty()
                } else {
                    literal += 1;
                    a == b
                }
            });
            if ok && best.as_ref().is_none_or(|(l, _)| literal > *l) {
                best = Some((literal, t.clone()));
            }
        }
        best.map(|(_, t)| t)
    }

    /// `Ok(template)` when the body conforms; otherwise every violation with its JSON pointer.
    /// Strict: a property the spec does not declare is a violation unless named in `extra`, the
    /// list of documented deviations (fields the real service sends beyond its spec).
    pub fn validate(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
        dev: &Deviations,
    ) -> Result<String, String> {
        let template = self
            .template(path)
            .ok_or_else(|| format!("{method} {path}: no path in the spec matches"))?;
        let op = &self.doc["paths"][&template][method.to_ascii_lowercase()];
        if op.is_null() {
            return Err(format!(
                "{method} {template}: the spec has no such operation"
            ));
        }
        let responses = &op["responses"];
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let response = [code.as_str(), range.as_str(), "default"]
            .iter()
            .map(|k| &responses[*k])
            .find(|r| !r.is_null())
            .ok_or_else(|| {
                format!("{method} {template}: no response {status} or default in the spec")
            })?;
        let response = self.deref(response);
        let content = response["content"].as_object().cloned().unwrap_or_default();
        let schema = ["application/json", "*/*"]
            .iter()
            .find_map(|ct| content.get(*ct))
            .or_else(|| {
                content
                    .iter()
                    .find(|(k, _)| k.contains("json"))
                    .map(|(_, v)| v)
            })
            .and_then(|c| c.get("schema"))
            .cloned()
            .ok_or_else(|| {
                format!("{method} {template} {status}: the spec gives no JSON schema")
            })?;
        let mut schema = schema;
        openapi_to_json_schema(&mut schema);
        close_objects(&mut schema);
        // The response schema refers to `#/components/...`: validate inside a root that has them.
        let root = json!({"allOf": [schema], "components": self.strict_components()});
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(false)
            .build(&root)
            .map_err(|e| format!("{method} {template}: the spec's schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .filter(|e| {
                let at = e.instance_path().to_string();
                let field = at.rsplit('/').next().unwrap_or_default();
                match e.kind() {
                    jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                        !unexpected.iter().all(|u| dev.extra.contains(&u.as_str()))
                    }
                    jsonschema::error::ValidationErrorKind::Type { .. }
                        if e.instance().is_null() =>
                    {
                        !dev.null.contains(&field)
                    }
                    jsonschema::error::ValidationErrorKind::Type { .. } => {
                        !dev.any_type_under.is_some_and(|p| at.starts_with(p))
                    }
                    _ => true,
                }
            })
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(template)
        } else {
            Err(format!(
                "{method} {template} {status} does not conform:\n  {}",
                errors.join("\n  ")
            ))
        }
    }

    fn strict_components(&self) -> Value {
        let mut c = self.components.clone();
        close_objects(&mut c);
        c
    }

    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/"))
        {
            Some(ptr) => self.doc.pointer(&format!("/{ptr}")).unwrap_or(v),
            None => v,
        }
    }
}

/// `nullable: true` becomes an explicit `null` type; keywords JSON Schema draft 4 lacks are dropped.
fn openapi_to_json_schema(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(e)) = map.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            for k in [
                "example",
                "examples",
                "discriminator",
                "xml",
                "externalDocs",
                "deprecated",
                "readOnly",
                "writeOnly",
            ] {
                // Only where they are keywords, not property names.
                if map.get(k).is_some_and(|x| {
                    !x.is_object() || k == "discriminator" || k == "xml" || k == "externalDocs"
                }) {
                    map.remove(k);
                }
            }
            for (k, child) in map.iter_mut() {
                if k != "enum" && k != "default" {
                    openapi_to_json_schema(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_to_json_schema),
        _ => {}
    }
}

/// Object schemas with declared properties accept no others (outside compositions, where that
/// would make the branches reject each other).
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (k, child) in map.iter_mut() {
                if !matches!(k.as_str(), "allOf" | "anyOf" | "oneOf" | "enum" | "default") {
                    close_objects(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}
