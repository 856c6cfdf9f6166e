//! The `/docs` page: the same document as plain HTML, every text escaped. It loads nothing
//! (no script, stylesheet, font or image), so it works offline and under the API's
//! `default-src 'none'` content security policy.

// Indexing here walks our own document, built once from the annotations: no request input
// reaches it.
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing of a document built from constants"
)]

use std::fmt::Write as _;

use serde_json::{Map, Value};

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A schema in one line: `string`, `array of Article`, a link to a named schema.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!(
            "<a href=\"#schema-{0}\">{0}</a>",
            escape(name).replace(' ', "_")
        );
    }
    if let Some(options) = schema["oneOf"]
        .as_array()
        .or_else(|| schema["anyOf"].as_array())
    {
        return options.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let base = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    let mut text = escape(&base);
    if base.starts_with("array") {
        text = format!("array of {}", type_of(&schema["items"]));
    } else if let Some(values) = schema["additionalProperties"].as_object() {
        text = format!("object of {}", type_of(&Value::Object(values.clone())));
    }
    if let Some(format) = schema["format"].as_str() {
        let _ = write!(text, " ({})", escape(format));
    }
    text
}

fn render_operation(html: &mut String, path: &str, method: &str, operation: &Value) {
    let id = format!("{method}-{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>();
    let _ = write!(
        html,
        "<section id=\"op-{id}\">\n<h3><code>{} {}</code></h3>\n",
        escape(&method.to_ascii_uppercase()),
        escape(path)
    );
    for text in ["summary", "description"] {
        if let Some(text) = operation[text].as_str() {
            let _ = writeln!(html, "<p>{}</p>", escape(text));
        }
    }
    let auth = match operation["security"].as_array() {
        Some(schemes) if !schemes.is_empty() => {
            "Requires <code>Authorization: Token &lt;jwt&gt;</code> (or <code>Bearer</code>)."
        }
        _ => "No token required.",
    };
    let _ = writeln!(html, "<p>{auth}</p>");
    if let Some(parameters) = operation["parameters"].as_array() {
        html.push_str("<table>\n<caption>Parameters</caption>\n<tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>\n");
        for parameter in parameters {
            let _ = writeln!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(parameter["name"].as_str().unwrap_or_default()),
                escape(parameter["in"].as_str().unwrap_or_default()),
                type_of(&parameter["schema"]),
                if parameter["required"] == true {
                    "yes"
                } else {
                    "no"
                },
                escape(parameter["description"].as_str().unwrap_or_default()),
            );
        }
        html.push_str("</table>\n");
    }
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        for (media, body) in content {
            let _ = writeln!(
                html,
                "<p>Request body (<code>{}</code>): {}</p>",
                escape(media),
                type_of(&body["schema"])
            );
        }
    }
    html.push_str("<table>\n<caption>Responses</caption>\n<tr><th>status</th><th>description</th><th>body</th></tr>\n");
    if let Some(responses) = operation["responses"].as_object() {
        for (status, response) in responses {
            let body = response["content"]
                .as_object()
                .map(|content| {
                    content
                        .values()
                        .map(|media| type_of(&media["schema"]))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{body}</td></tr>",
                escape(status),
                escape(response["description"].as_str().unwrap_or_default()),
            );
        }
    }
    html.push_str("</table>\n</section>\n");
}

fn render_schema(html: &mut String, name: &str, schema: &Value) {
    let _ = write!(
        html,
        "<section id=\"schema-{}\">\n<h3>{}</h3>\n",
        escape(name).replace(' ', "_"),
        escape(name)
    );
    if let Some(description) = schema["description"].as_str() {
        let _ = writeln!(html, "<p>{}</p>", escape(description));
    }
    let Some(properties) = schema["properties"].as_object() else {
        let _ = writeln!(html, "<p>{}</p>\n</section>", type_of(schema));
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html.push_str(
        "<table>\n<tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>\n",
    );
    for (field, property) in properties {
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(field),
            type_of(property),
            if required.contains(&field.as_str()) {
                "yes"
            } else {
                "no"
            },
            escape(property["description"].as_str().unwrap_or_default()),
        );
    }
    html.push_str("</table>\n");
    if schema["additionalProperties"] == false {
        html.push_str("<p>Other fields are refused (422).</p>\n");
    }
    html.push_str("</section>\n");
}

/// The page: operations grouped by tag, then every schema.
pub(super) fn render(document: &Value) -> String {
    let title = escape(document["info"]["title"].as_str().unwrap_or("API"));
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} API</title>\n</head>\n<body>\n<h1>{title} API</h1>\n"
    );
    if let Some(description) = document["info"]["description"].as_str() {
        let _ = writeln!(html, "<p>{}</p>", escape(description));
    }
    html.push_str("<p>The machine-readable document: <a href=\"openapi.json\">openapi.json</a> (OpenAPI 3.1).</p>\n");
    let empty = Map::new();
    let paths = document["paths"].as_object().unwrap_or(&empty);
    let mut tags: Vec<&str> = Vec::new();
    for item in paths.values().filter_map(Value::as_object) {
        for operation in item.values() {
            for tag in operation["tags"].as_array().into_iter().flatten() {
                if let Some(tag) = tag.as_str().filter(|t| !tags.contains(t)) {
                    tags.push(tag);
                }
            }
        }
    }
    for tag in tags {
        let _ = writeln!(html, "<h2>{}</h2>", escape(tag));
        for (path, item) in paths {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let tagged = operation["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == tag));
                if tagged {
                    render_operation(&mut html, path, method, operation);
                }
            }
        }
    }
    html.push_str("<h2>Schemas</h2>\n");
    if let Some(schemas) = document["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            render_schema(&mut html, name, schema);
        }
    }
    html.push_str("</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn html_escapes_every_text() {
        assert_eq!(
            escape("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
        let page = render(&json!({
            "info": {"title": "<b>", "description": "<img src=x onerror=alert(1)>"},
            "paths": {}
        }));
        assert!(!page.contains("<img") && !page.contains("<b>"), "{page}");
    }
}
