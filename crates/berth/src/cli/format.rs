//! A small Go `text/template` subset (as the docker CLI uses it for `--format`), Go-style value
//! printing, docker's table writer, and JSON indentation that keeps the daemon's key order.
//!
//! Supported: text, `{{.A.B}}`, `{{.}}`, `{{$var.A}}`, string/number/bool literals, function calls
//! (`json upper lower title join split index len print println printf truncate pad eq ne lt le gt ge
//! and or not`), pipelines (`{{.Names | upper}}`), parentheses, `{{if}}/{{else}}/{{else if}}/{{end}}`,
//! `{{range}}` (with `$i, $v :=`), `{{with}}`, `{{- -}}` trimming and `{{/* comments */}}`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

use super::units::go_float;

/// What a missing map key prints as (Go's `<no value>`).
const NO_VALUE: &str = "<no value>";

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Dot,
    Lit(Value),
    Ident(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Comma,
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Ident(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

enum Piece {
    Text(String),
    Action(String),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

fn split_pieces(src: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        let mut text = &rest[..i];
        let mut after = &rest[i + 2..];
        if after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n") {
            text = text.trim_end();
            after = &after[1..];
        }
        out.push(Piece::Text(text.to_string()));
        let j = find_close(after).ok_or_else(|| anyhow!("template: unclosed action"))?;
        let mut inner = &after[..j];
        rest = &after[j + 2..];
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            rest = rest.trim_start();
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            out.push(Piece::Action(inner.to_string()));
        }
    }
    out.push(Piece::Text(rest.to_string()));
    Ok(out)
}

/// Find the closing `}}`, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let path = |i: &mut usize| -> Vec<String> {
        let mut p = Vec::new();
        while *i < chars.len() && chars[*i] == '.' && chars.get(*i + 1).is_some_and(|c| is_ident(*c)) {
            *i += 1;
            let st = *i;
            while *i < chars.len() && is_ident(chars[*i]) {
                *i += 1;
            }
            p.push(chars[st..*i].iter().collect());
        }
        p
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
                let p = path(&mut i);
                if !p.is_empty() {
                    bail!("template: field access on parenthesized expressions is not supported");
                }
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Declare);
                i += 1;
            }
            '.' => {
                let p = path(&mut i);
                if p.is_empty() {
                    out.push(Tok::Dot);
                    i += 1;
                } else {
                    out.push(Tok::Field(p));
                }
            }
            '$' => {
                i += 1;
                let st = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let name: String = chars[st..i].iter().collect();
                out.push(Tok::Var(name, path(&mut i)));
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        bail!("template: unterminated quoted string")
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars.get(i).copied().unwrap_or('\\');
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Lit(Value::String(s)));
            }
            '`' => {
                i += 1;
                let st = i;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    bail!("template: unterminated raw quoted string");
                }
                out.push(Tok::Lit(Value::String(chars[st..i].iter().collect())));
                i += 1;
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let st = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let t: String = chars[st..i].iter().collect();
                let v = if let Ok(n) = t.parse::<i64>() {
                    Value::from(n)
                } else {
                    Value::from(t.parse::<f64>().map_err(|_| anyhow!("template: bad number {t}"))?)
                };
                out.push(Tok::Lit(v));
            }
            c if is_ident(c) => {
                let st = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let w: String = chars[st..i].iter().collect();
                out.push(match w.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(w),
                });
            }
            c => bail!("template: unexpected {c:?} in action"),
        }
    }
    Ok(out)
}

fn parse_pipeline(toks: &[Tok]) -> Result<Pipeline> {
    let mut toks = toks;
    let mut decl = Vec::new();
    if let Some(p) = toks.iter().position(|t| *t == Tok::Declare) {
        for t in &toks[..p] {
            match t {
                Tok::Var(n, path) if path.is_empty() => decl.push(n.clone()),
                Tok::Comma => {}
                _ => bail!("template: bad variable declaration"),
            }
        }
        toks = &toks[p + 1..];
    }
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => {
                if cur.is_empty() {
                    bail!("template: missing command before |");
                }
                cmds.push(std::mem::take(&mut cur));
            }
            Tok::LParen => {
                let mut depth = 1;
                let st = i + 1;
                while depth > 0 {
                    i += 1;
                    match toks.get(i) {
                        Some(Tok::LParen) => depth += 1,
                        Some(Tok::RParen) => depth -= 1,
                        Some(_) => {}
                        None => bail!("template: unclosed left paren"),
                    }
                }
                cur.push(Arg::Sub(parse_pipeline(&toks[st..i])?));
            }
            Tok::RParen => bail!("template: unexpected right paren"),
            Tok::Field(p) => cur.push(Arg::Field(p.clone())),
            Tok::Dot => cur.push(Arg::Field(Vec::new())),
            Tok::Var(n, p) => cur.push(Arg::Var(n.clone(), p.clone())),
            Tok::Lit(v) => cur.push(Arg::Lit(v.clone())),
            Tok::Ident(w) => cur.push(Arg::Ident(w.clone())),
            Tok::Declare | Tok::Comma => bail!("template: unexpected token in command"),
        }
        i += 1;
    }
    if cur.is_empty() {
        bail!("template: missing value for command");
    }
    cmds.push(cur);
    Ok(Pipeline { decl, cmds })
}

enum Stop {
    Eof,
    End,
    Else(Option<Pipeline>),
}

fn parse_list(pieces: &[Piece], i: &mut usize) -> Result<(Vec<Node>, Stop)> {
    let mut nodes = Vec::new();
    while *i < pieces.len() {
        let p = &pieces[*i];
        *i += 1;
        match p {
            Piece::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t.clone()));
                }
            }
            Piece::Action(a) => {
                let toks = lex(a)?;
                match toks.first() {
                    None => bail!("template: missing value for command"),
                    Some(Tok::Ident(k)) if k == "end" => return Ok((nodes, Stop::End)),
                    Some(Tok::Ident(k)) if k == "else" => {
                        let rest = &toks[1..];
                        if rest.is_empty() {
                            return Ok((nodes, Stop::Else(None)));
                        }
                        if rest.first() == Some(&Tok::Ident("if".into())) {
                            return Ok((nodes, Stop::Else(Some(parse_pipeline(&rest[1..])?))));
                        }
                        bail!("template: unexpected tokens after else");
                    }
                    Some(Tok::Ident(k)) if k == "if" || k == "range" || k == "with" => {
                        let kind = k.clone();
                        let pipe = parse_pipeline(&toks[1..])?;
                        nodes.push(parse_block(&kind, pipe, pieces, i)?);
                    }
                    Some(_) => nodes.push(Node::Action(parse_pipeline(&toks)?)),
                }
            }
        }
    }
    Ok((nodes, Stop::Eof))
}

fn parse_block(kind: &str, pipe: Pipeline, pieces: &[Piece], i: &mut usize) -> Result<Node> {
    let (body, end) = parse_list(pieces, i)?;
    let els = match end {
        Stop::Eof => bail!("template: unexpected EOF, missing {{{{end}}}}"),
        Stop::End => Vec::new(),
        Stop::Else(None) => {
            let (els, end) = parse_list(pieces, i)?;
            if !matches!(end, Stop::End) {
                bail!("template: missing {{{{end}}}} after {{{{else}}}}");
            }
            els
        }
        Stop::Else(Some(cond)) => vec![parse_block("if", cond, pieces, i)?],
    };
    Ok(match kind {
        "if" => Node::If(pipe, body, els),
        "range" => Node::Range(pipe, body, els),
        _ => Node::With(pipe, body, els),
    })
}

type Vars = Vec<(String, Value)>;

impl Template {
    /// Parse a template.
    pub fn parse(src: &str) -> Result<Template> {
        let pieces = split_pieces(src)?;
        let mut i = 0;
        let (nodes, end) = parse_list(&pieces, &mut i)?;
        match end {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => bail!("template: unexpected {{{{end}}}}"),
            Stop::Else(_) => bail!("template: unexpected {{{{else}}}}"),
        }
    }

    /// The fields the template reads from its data at the top level (outside range/with, where
    /// the dot changes): `.Names` in `{{.Names}}`, `{{if .Status}}` or `{{json .Labels}}`.
    fn top_fields(&self) -> Vec<String> {
        fn from_pipe(p: &Pipeline, out: &mut Vec<String>) {
            for a in p.cmds.iter().flatten() {
                match a {
                    Arg::Field(path) if !path.is_empty() => out.push(path[0].clone()),
                    Arg::Sub(inner) => from_pipe(inner, out),
                    _ => {}
                }
            }
        }
        fn walk(nodes: &[Node], out: &mut Vec<String>) {
            for n in nodes {
                match n {
                    Node::Text(_) => {}
                    Node::Action(p) => from_pipe(p, out),
                    Node::If(p, a, b) => {
                        from_pipe(p, out);
                        walk(a, out);
                        walk(b, out);
                    }
                    Node::Range(p, _, _) | Node::With(p, _, _) => from_pipe(p, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.nodes, &mut out);
        out
    }

    /// Execute against `data`.
    pub fn execute(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        let mut vars: Vars = vec![(String::new(), data.clone())];
        exec(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

fn exec(nodes: &[Node], dot: &Value, vars: &mut Vars, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipe(p, dot, vars)?;
                if p.decl.is_empty() {
                    out.push_str(&go_print(&v));
                }
            }
            Node::If(p, a, b) => {
                let mark = vars.len();
                let v = eval_pipe(p, dot, vars)?;
                let r = exec(if truthy(&v) { a } else { b }, dot, vars, out);
                vars.truncate(mark);
                r?;
            }
            Node::With(p, a, b) => {
                let mark = vars.len();
                let v = eval_pipe(p, dot, vars)?;
                let r = if truthy(&v) {
                    exec(a, &v, vars, out)
                } else {
                    exec(b, dot, vars, out)
                };
                vars.truncate(mark);
                r?;
            }
            Node::Range(p, body, els) => {
                let mut plain = p.clone();
                plain.decl.clear();
                let v = eval_pipe(&plain, dot, vars)?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a.iter().enumerate().map(|(i, x)| (Value::from(i), x.clone())).collect(),
                    Value::Object(m) => m.iter().map(|(k, x)| (Value::String(k.clone()), x.clone())).collect(),
                    Value::Null => Vec::new(),
                    Value::String(s) if s == NO_VALUE => Vec::new(),
                    Value::Number(n) => (0..n.as_u64().unwrap_or(0)).map(|i| (Value::from(i), Value::from(i))).collect(),
                    other => bail!("template: range can't iterate over {}", go_print(other)),
                };
                if items.is_empty() {
                    exec(els, dot, vars, out)?;
                }
                for (k, x) in items {
                    let mark = vars.len();
                    match p.decl.as_slice() {
                        [] => {}
                        [v] => vars.push((v.clone(), x.clone())),
                        [kv, vv, ..] => {
                            vars.push((kv.clone(), k));
                            vars.push((vv.clone(), x.clone()));
                        }
                    }
                    let r = exec(body, &x, vars, out);
                    vars.truncate(mark);
                    r?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipe(p: &Pipeline, dot: &Value, vars: &mut Vars) -> Result<Value> {
    let mut piped: Option<Value> = None;
    for cmd in &p.cmds {
        piped = Some(eval_cmd(cmd, dot, vars, piped)?);
    }
    let v = piped.unwrap_or(Value::Null);
    if let Some(name) = p.decl.first() {
        vars.push((name.clone(), v.clone()));
    }
    Ok(v)
}

fn eval_cmd(cmd: &[Arg], dot: &Value, vars: &mut Vars, piped: Option<Value>) -> Result<Value> {
    if let Some(Arg::Ident(name)) = cmd.first() {
        let mut args = Vec::new();
        for a in &cmd[1..] {
            args.push(arg_val(a, dot, vars)?);
        }
        args.extend(piped);
        return call(name, args);
    }
    // `.Label "key"`: the method docker's ps and volume rows have (one label's value, or "").
    if let (Some(Arg::Field(p)), 2, None) = (cmd.first(), cmd.len(), &piped) {
        if p.last().is_some_and(|l| l == "Label") {
            let key = as_str(&arg_val(&cmd[1], dot, vars)?);
            let labels = lookup(dot, &[&p[..p.len() - 1], &["Labels".to_string()]].concat());
            let value = match &labels {
                Value::Object(m) => m.get(&key).map(as_str),
                Value::String(s) => s
                    .split(',')
                    .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string())),
                _ => None,
            };
            return Ok(Value::String(value.unwrap_or_default()));
        }
    }
    if cmd.len() > 1 || piped.is_some() {
        bail!("template: can't give argument to non-function");
    }
    arg_val(&cmd[0], dot, vars)
}

fn arg_val(a: &Arg, dot: &Value, vars: &mut Vars) -> Result<Value> {
    Ok(match a {
        Arg::Field(p) => lookup(dot, p),
        Arg::Var(name, p) => {
            let v = vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| anyhow!("template: undefined variable \"${name}\""))?;
            lookup(&v, p)
        }
        Arg::Lit(v) => v.clone(),
        Arg::Ident(name) => call(name, Vec::new())?,
        Arg::Sub(p) => eval_pipe(p, dot, vars)?,
    })
}

fn lookup(v: &Value, path: &[String]) -> Value {
    let mut cur = v;
    for key in path {
        let Value::Object(m) = cur else {
            return Value::String(NO_VALUE.into());
        };
        match m
            .get(key)
            .or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
        {
            Some(next) => cur = next,
            None => return Value::String(NO_VALUE.into()),
        }
    }
    cur.clone()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != NO_VALUE,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn as_str(v: &Value) -> String {
    go_print(v)
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| anyhow!("template: incomparable values")),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
            _ => bail!("template: incompatible types for comparison"),
        },
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value> {
    let want = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!("template: wrong number of args for {name}: want {n} got {}", args.len());
        }
        Ok(())
    };
    Ok(match name {
        "json" => {
            want(1)?;
            let v = match &args[0] {
                Value::String(s) if s == NO_VALUE => Value::Null,
                v => v.clone(),
            };
            // docker's template `json` turns HTML escaping off: <, > and & stay as they are.
            Value::String(serde_json::to_string(&v)?)
        }
        "upper" => {
            want(1)?;
            Value::String(as_str(&args[0]).to_uppercase())
        }
        "lower" => {
            want(1)?;
            Value::String(as_str(&args[0]).to_lowercase())
        }
        "title" => {
            want(1)?;
            let s = as_str(&args[0]);
            let mut out = String::new();
            let mut start = true;
            for c in s.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Value::String(out)
        }
        "join" => {
            want(2)?;
            let sep = as_str(&args[1]);
            match &args[0] {
                Value::Array(a) => Value::String(a.iter().map(go_print).collect::<Vec<_>>().join(&sep)),
                other => Value::String(go_print(other)),
            }
        }
        "split" => {
            want(2)?;
            let s = as_str(&args[0]);
            let sep = as_str(&args[1]);
            Value::Array(s.split(sep.as_str()).map(|x| Value::String(x.into())).collect())
        }
        "index" => {
            if args.is_empty() {
                bail!("template: index needs at least one argument");
            }
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Array(a), k) => {
                        let i = num(k).ok_or_else(|| anyhow!("template: cannot index slice with {}", go_print(k)))?;
                        a.get(i as usize)
                            .cloned()
                            .ok_or_else(|| anyhow!("template: index out of range: {i}"))?
                    }
                    (Value::Object(m), k) => m.get(&as_str(k)).cloned().unwrap_or(Value::String(NO_VALUE.into())),
                    _ => bail!("template: can't index item of type {}", type_name(&cur)),
                };
            }
            cur
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                other => bail!("template: len of {}", type_name(other)),
            })
        }
        "print" => Value::String(args.iter().map(go_print).collect()),
        "println" => Value::String(args.iter().map(go_print).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            if args.is_empty() {
                bail!("template: printf needs a format");
            }
            Value::String(printf(&as_str(&args[0]), &args[1..]))
        }
        "truncate" => {
            want(2)?;
            let n = num(&args[1]).unwrap_or(0.0) as usize;
            Value::String(as_str(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            want(3)?;
            let l = num(&args[1]).unwrap_or(0.0) as usize;
            let r = num(&args[2]).unwrap_or(0.0) as usize;
            Value::String(format!("{}{}{}", " ".repeat(l), as_str(&args[0]), " ".repeat(r)))
        }
        "eq" => {
            if args.len() < 2 {
                bail!("template: eq needs two arguments");
            }
            Value::Bool(args[1..].iter().any(|b| values_eq(&args[0], b)))
        }
        "ne" => {
            want(2)?;
            Value::Bool(!values_eq(&args[0], &args[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = compare(&args[0], &args[1])?;
            Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => args.iter().find(|a| !truthy(a)).or(args.last()).cloned().unwrap_or(Value::Null),
        "or" => args.iter().find(|a| truthy(a)).or(args.last()).cloned().unwrap_or(Value::Null),
        _ => bail!("template: function {name:?} not defined"),
    })
}

fn values_eq(a: &Value, b: &Value) -> bool {
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Go's `printf` for the verbs templates use (`%s %v %d %q %x %f %t %%`), with the flags `-`
/// (left-justify) and `0` (zero padding), a width and a precision (`%-12s`, `%.5s`, `%6.2f`).
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = args.iter();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero) = (false, false);
        while let Some(&f) = it.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let number = |it: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                it.next();
            }
            n.parse::<usize>().ok()
        };
        let width = number(&mut it);
        let precision = if it.peek() == Some(&'.') {
            it.next();
            Some(number(&mut it).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = ai.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let num = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        let mut text = match verb {
            'q' => format!("{:?}", go_print(arg)),
            'd' => match arg.as_i64().or_else(|| num(arg).map(|f| f as i64)) {
                Some(i) => i.to_string(),
                None => format!("%!d({})", go_print(arg)),
            },
            'x' => match arg.as_u64() {
                Some(u) => format!("{u:x}"),
                None => go_print(arg).bytes().map(|b| format!("{b:02x}")).collect(),
            },
            'f' | 'g' | 'e' => match num(arg) {
                Some(f) => format!("{:.*}", precision.unwrap_or(6), f),
                None => format!("%!{verb}({})", go_print(arg)),
            },
            _ => go_print(arg),
        };
        if let (Some(p), 's' | 'v' | 'q') = (precision, verb) {
            text = text.chars().take(p).collect();
        }
        let len = text.chars().count();
        if let Some(w) = width.filter(|w| *w > len) {
            let pad = w - len;
            if left {
                text.push_str(&" ".repeat(pad));
            } else if zero && matches!(verb, 'd' | 'f' | 'x') {
                let (sign, digits) = text.split_at(usize::from(text.starts_with('-')));
                text = format!("{sign}{}{digits}", "0".repeat(pad));
            } else {
                text = format!("{}{text}", " ".repeat(pad));
            }
        }
        out.push_str(&text);
    }
    out
}

/// Print a value the way Go's `fmt` prints it in a template: `true`, `[a b]`, `map[k:v]`.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                go_float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            format!(
                "map[{}]",
                sorted
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", go_print(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

/// docker's format preprocessing: strip a leading `table`, trim, turn `\t` and `\n` escapes into characters.
/// Returns (is_table, template text).
pub fn prepare(format: &str) -> (bool, String) {
    let t = format.trim_start();
    let (table, rest) = match t.strip_prefix("table") {
        Some(r) if r.is_empty() || r.starts_with(char::is_whitespace) => (true, r),
        _ => (false, t),
    };
    (table, rest.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n"))
}

/// Render rows with a docker `--format` string; `headers` maps field names to column titles for `table`.
pub fn render(format: &str, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
    let (table, text) = prepare(format);
    let tmpl = Template::parse(&text)?;
    // A list row has a fixed set of fields, as docker's row types do: naming another is an error
    // there (docker: "can't evaluate field X"), not `<no value>`. `Label` is a method.
    let known: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let unknown = |f: &String| f != "Label" && !known.contains(&f.as_str()) && !rows.iter().any(|r| r.get(f).is_some());
    if let Some(bad) = tmpl.top_fields().into_iter().find(|f| !rows.is_empty() && unknown(f)) {
        bail!(
            "template: can't evaluate field {bad} in this list's rows (fields: {})",
            known.join(", ")
        );
    }
    let mut out = String::new();
    if table {
        let mut m = Map::new();
        for (k, h) in headers {
            m.insert((*k).to_string(), Value::String((*h).to_string()));
        }
        out.push_str(&tmpl.execute(&Value::Object(m))?);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&tmpl.execute(r)?);
        out.push('\n');
    }
    Ok(if table { tabwrite(&out, 10, 3) } else { out })
}

/// Go `text/tabwriter` as docker configures it (minwidth, padding with spaces): tab-terminated cells
/// are padded to their column's width; the last cell of a line is not.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split_terminator('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(minwidth);
            }
            widths[i] = widths[i].max(c.chars().count() + padding);
        }
    }
    let mut out = String::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// Re-indent JSON text with 4 spaces (like docker's `json.MarshalIndent`), keeping key order.
pub fn indent_json(src: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut chars = src.chars().peekable();
    let nl = |out: &mut String, d: usize| {
        out.push('\n');
        out.push_str(&"    ".repeat(d));
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}') | Some(']')) {
                    out.push(chars.next().unwrap_or(']'));
                } else {
                    depth += 1;
                    nl(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                nl(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                nl(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
