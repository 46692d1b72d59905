//! A small Go `text/template` subset (as the docker CLI uses it for `--format`), Go-style value
//! printing, docker's table writer, and JSON indentation that keeps the daemon's key order.
//!
//! Supported: text, `{{.A.B}}`, `{{.}}`, `{{$var.A}}`, string/number/bool literals, function calls
//! (`json upper lower title join split index len print println printf truncate pad eq ne lt le gt ge
//! and or not`), pipelines (`{{.Names | upper}}`), parentheses, `{{if}}/{{else}}/{{else if}}/{{end}}`,
//! `{{range}}` (with `$i, $v :=`), `{{with}}`, `{{- -}}` trimming and `{{/* comments */}}`.
//!
//! The parts: `template` parses, `exec` executes, `funcs` holds the template functions and Go's
//! value printing, `table` renders rows (and docker's tab writer), `json` indents JSON.

mod exec;
mod funcs;
mod json;
mod table;
mod template;

pub use funcs::go_print;
pub use json::indent_json;
pub use table::{prepare, render, tabwrite};
pub use template::Template;

/// What a missing map key prints as (Go's `<no value>`).
const NO_VALUE: &str = "<no value>";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().execute(v).unwrap()
    }

    #[test]
    fn unknown_fields_of_list_rows_are_errors() {
        let rows = vec![json!({"ID": "1", "Names": "a", "Mounts": [{"X": "m"}]})];
        let headers = [("ID", "CONTAINER ID"), ("Names", "NAMES"), ("Mounts", "MOUNTS")];
        assert_eq!(render("{{.Names}}", &rows, &headers).unwrap(), "a\n");
        let err = render("{{.Nope}}", &rows, &headers).unwrap_err().to_string();
        assert!(err.contains("can't evaluate field Nope"), "{err}");
        // Inside range the dot is an element: not checked against the rows.
        assert_eq!(render("{{range .Mounts}}{{.X}}{{end}}", &rows, &headers).unwrap(), "m\n");
    }

    #[test]
    fn label_method() {
        let row = json!({"Names": "a", "Labels": "role=web,tier=front"});
        assert_eq!(run(r#"{{.Label "tier"}}|{{.Label "none"}}"#, &row), "front|");
        let vol = json!({"Name": "v", "Labels": {"k": "v1"}});
        assert_eq!(run(r#"{{.Label "k"}}"#, &vol), "v1");
    }

    #[test]
    fn printf_width_precision_and_json_escapes() {
        let v = json!({"ID": "0123456789abcdef", "N": 42, "F": 0.5, "T": "<a&b>"});
        assert_eq!(run(r#"{{printf "%.5s" .ID}}"#, &v), "01234");
        assert_eq!(run(r#"[{{printf "%-6s|%6s" "ab" "cd"}}]"#, &v), "[ab    |    cd]");
        assert_eq!(run(r#"{{printf "%05d %x %.2f %q" .N .N .F "x"}}"#, &v), r#"00042 2a 0.50 "x""#);
        assert_eq!(run(r#"{{printf "%s %s" .ID}}"#, &v), "0123456789abcdef %!s(MISSING)");
        assert_eq!(run("{{json .T}}", &v), r#""<a&b>""#);
    }

    #[test]
    fn fields_and_text() {
        let v = json!({"Id": "abc", "State": {"ExitCode": 3, "OOMKilled": false, "Running": true},
                       "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}}});
        assert_eq!(run("{{.Id}}", &v), "abc");
        assert_eq!(run("code={{.State.ExitCode}} oom={{.State.OOMKilled}}", &v), "code=3 oom=false");
        assert_eq!(run("{{.Config.Env}}", &v), "[A=1 B=2]");
        assert_eq!(run("{{.Config.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(run("{{.Nope}}", &v), "<no value>");
        assert_eq!(run("{{json .Config.Env}}", &v), r#"["A=1","B=2"]"#);
        assert_eq!(run("{{json .State}}", &v), r#"{"ExitCode":3,"OOMKilled":false,"Running":true}"#);
        assert_eq!(run("{{.Id | upper}}", &v), "ABC");
        assert_eq!(run("{{join .Config.Env \",\"}}", &v), "A=1,B=2");
        assert_eq!(run("{{index .Config.Labels \"a\"}}", &v), "1");
        assert_eq!(run("{{len .Config.Env}}", &v), "2");
        assert_eq!(run("{{/* c */}}x", &v), "x");
    }

    #[test]
    fn control_flow() {
        let v = json!({"Running": true, "Mounts": [{"Destination": "/a"}, {"Destination": "/b"}],
                       "Labels": {"x": "1", "y": "2"}, "Empty": []});
        assert_eq!(run("{{if .Running}}up{{else}}down{{end}}", &v), "up");
        assert_eq!(run("{{if not .Running}}up{{else if .Mounts}}m{{else}}down{{end}}", &v), "m");
        assert_eq!(run("{{range .Mounts}}{{.Destination}} {{end}}", &v), "/a /b ");
        assert_eq!(run("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", &v), "x=1;y=2;");
        assert_eq!(run("{{range .Empty}}x{{else}}none{{end}}", &v), "none");
        assert_eq!(run("{{with .Mounts}}{{len .}}{{end}}", &v), "2");
        assert_eq!(run("a {{- \" b \" -}} c", &v), "a b c");
        assert_eq!(run("{{if eq .Running true}}y{{end}}", &v), "y");
        assert_eq!(run("{{$x := .Running}}{{$x}}", &v), "true");
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{nofunc .A}}").unwrap().execute(&json!({})).is_err());
    }

    #[test]
    fn tables() {
        let rows = vec![json!({"ID": "abc", "Names": "web"}), json!({"ID": "abcdef012345", "Names": "db"})];
        let h = [("ID", "CONTAINER ID"), ("Names", "NAMES")];
        let out = render("table {{.ID}}\\t{{.Names}}", &rows, &h).unwrap();
        assert_eq!(out, "CONTAINER ID   NAMES\nabc            web\nabcdef012345   db\n");
        let out = render("{{.ID}}: {{.Names}}", &rows, &h).unwrap();
        assert_eq!(out, "abc: web\nabcdef012345: db\n");
        assert_eq!(tabwrite("a\tb\n", 10, 3), "a         b\n");
    }

    #[test]
    fn go_values() {
        assert_eq!(go_print(&json!(1.5)), "1.5");
        assert_eq!(go_print(&json!(null)), "<nil>");
        assert_eq!(go_print(&json!([1, "a", true])), "[1 a true]");
        assert_eq!(go_print(&json!({"k": [1]})), "map[k:[1]]");
    }

    #[test]
    fn json_indent() {
        let s = r#"{"b":1,"a":[1,2],"e":{},"s":"x,{y}:z"}"#;
        assert_eq!(
            indent_json(s),
            "{\n    \"b\": 1,\n    \"a\": [\n        1,\n        2\n    ],\n    \"e\": {},\n    \"s\": \"x,{y}:z\"\n}"
        );
    }
}
