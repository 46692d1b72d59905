//! Executing a parsed template against its data: pipelines, fields, variables and the control
//! nodes.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::funcs::{as_str, call, go_print};
use super::template::{Arg, Node, Pipeline};
use super::NO_VALUE;

pub(super) type Vars = Vec<(String, Value)>;

pub(super) fn exec(nodes: &[Node], dot: &Value, vars: &mut Vars, out: &mut String) -> Result<()> {
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

pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != NO_VALUE,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}
