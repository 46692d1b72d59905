#!/usr/bin/env python3
"""Generate crates/kube/src/apiserver/proto_tables.rs: the protobuf field tables of the kinds the
API server serves, from Kubernetes' own generated.proto files (field numbers, wire types) and
types.go files (JSON names of inlined structs, which fields are pointers or omitempty).

Usage: scripts/gen_proto_tables.py API_REPO APIMACHINERY_REPO TAG > crates/kube/src/apiserver/proto_tables.rs
where the repos are git checkouts (or mirrors) of kubernetes/api and kubernetes/apimachinery and
TAG a tag both have (v0.33.9 for Kubernetes 1.33, the version Berth serves).
"""
import re
import subprocess
import sys

API, MACHINERY, TAG = sys.argv[1], sys.argv[2], sys.argv[3]

# Packages generated, as (repo, directory).
PACKAGES = [
    (API, d)
    for d in [
        "core/v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "networking/v1",
        "policy/v1", "storage/v1", "rbac/v1", "coordination/v1", "discovery/v1", "scheduling/v1",
        "authentication/v1", "authorization/v1",
    ]
] + [(MACHINERY, "pkg/apis/meta/v1")]

# Messages that are one JSON value, not an object.
SPECIAL = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "Raw",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "Raw",
    # Messages of one repeated string that JSON writes as the list itself.
    "k8s.io.api.authentication.v1.ExtraValue": "StrList",
    "k8s.io.api.authorization.v1.ExtraValue": "StrList",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs": "StrList",
}
SKIP_MESSAGES = {"Timestamp"}


def show(repo, path):
    return subprocess.run(["git", "-C", repo, "show", f"{TAG}:{path}"], check=True, capture_output=True, text=True).stdout


def const_name(full):
    pkg, name = full.rsplit(".", 1)
    for p in ["k8s.io.api.", "k8s.io.apimachinery.pkg.apis.", "k8s.io.apimachinery.pkg."]:
        if pkg.startswith(p):
            pkg = pkg[len(p):]
            break
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).upper()
    return (pkg.replace(".", "_").upper() + "_" + snake)


# Go field facts: (package, Struct, protoName) -> (inline, pointer, omitempty)
go = {}
messages = {}  # full name -> list of (num, label, type, name, keytype)
order = []
for repo, d in PACKAGES:
    proto = show(repo, f"{d}/generated.proto")
    pkg = re.search(r"^package ([\w.]+);", proto, re.M).group(1)
    types = show(repo, f"{d}/types.go")
    struct = None
    for line in types.split("\n"):
        m = re.match(r"^type (\w+) struct \{", line)
        if m:
            struct = m.group(1)
            continue
        if line.startswith("}"):
            struct = None
            continue
        if struct is None:
            continue
        m = re.search(r'`json:"([^"]*)"[^`]*protobuf:"[^"]*name=(\w+)', line)
        if not m:
            continue
        json_tag, pname = m.group(1), m.group(2)
        fields = line.strip().split()
        inline = json_tag.startswith(",inline") or json_tag == ""
        gotype = fields[0] if inline else (fields[1] if len(fields) > 1 else "")
        go[(pkg, struct, pname)] = (inline, gotype.startswith("*"), "omitempty" in json_tag)
    cur = None
    for line in proto.split("\n"):
        s = line.strip()
        if s.startswith("//") or not s:
            continue
        m = re.match(r"^message (\w+) \{", s)
        if m:
            cur = f"{pkg}.{m.group(1)}"
            messages[cur] = []
            order.append(cur)
            continue
        if s == "}":
            cur = None
            continue
        if cur is None:
            continue
        m = re.match(r"^(optional|repeated) ([\w.]+) (\w+) = (\d+)", s)
        if m:
            messages[cur].append((int(m.group(4)), m.group(1), m.group(2), m.group(3), None))
            continue
        m = re.match(r"^map<(\w+), ([\w.]+)> (\w+) = (\d+)", s)
        if m:
            messages[cur].append((int(m.group(4)), "map", m.group(2), m.group(3), m.group(1)))
            continue
        if s.startswith("option ") or s.startswith("reserved "):
            continue
        raise SystemExit(f"unparsed line in {cur}: {s}")

# Also the few apimachinery messages referenced (resource, intstr, runtime) are SPECIAL.
def resolve(t, pkg):
    if t.startswith("."):
        return t[1:]
    if "." in t:
        return t
    if t in ("string", "bytes", "bool", "int32", "int64", "double", "float", "uint32", "uint64"):
        return t
    return f"{pkg}.{t}"


def kind_of(full_msg, num, label, t, name, key):
    pkg, struct = full_msg.rsplit(".", 1)
    inline, pointer, omitempty = go.get((pkg, struct, name), (False, False, False))
    t = resolve(t, pkg)
    if label == "map":
        if key != "string":
            raise SystemExit(f"map key {key} in {full_msg}.{name}")
        if t == "string":
            return "MapStr"
        if t == "bytes":
            return "MapBytes"
        if SPECIAL.get(t) == "Quantity":
            return "MapQuantity"
        if SPECIAL.get(t) == "StrList":
            return "MapStrList"
        if SPECIAL.get(t) == "Time":
            return "MapTime"
        if t in messages:
            return f"MapMsg({const_name(t)})"
        raise SystemExit(f"map value {t} in {full_msg}.{name}")
    if label == "repeated":
        if t == "string":
            return "Strs"
        if t in ("int32", "int64"):
            return "Ints"
        if t in messages:
            return f"Msgs({const_name(t)})"
        if t == "bytes":
            return "Byteses"
        if SPECIAL.get(t) == "Raw":
            return "Raws"
        raise SystemExit(f"repeated {t} in {full_msg}.{name}")
    # optional
    if t == "string":
        return "Str" if pointer else "Str0"
    if t == "bytes":
        return "Bytes"
    if t == "bool":
        return "Bool" if pointer or not omitempty else "Bool0"
    if t in ("int32", "int64"):
        return "Int" if pointer or not omitempty else "Int0"
    if t in ("double", "float"):
        return "Float"
    if t in SPECIAL:
        return SPECIAL[t]
    if t in messages:
        if inline:
            return f"Inline({const_name(t)})"
        return f"Msg({const_name(t)})"
    raise SystemExit(f"type {t} of {full_msg}.{name} is not generated")


out = []
out.append("//! Generated by `scripts/gen_proto_tables.py` from Kubernetes' `generated.proto` and `types.go`")
out.append(f"//! (kubernetes/api and kubernetes/apimachinery {TAG}); do not edit. The protobuf field tables of")
out.append("//! the kinds served: field number, JSON name, encoding (see [`super::proto::Kind`]).")
out.append("")
out.append("#![allow(missing_docs)]")
out.append("")
out.append("use super::proto::{Field, Kind};")
out.append("")
for full in order:
    if full.rsplit(".", 1)[1] in SKIP_MESSAGES or full in SPECIAL:
        continue
    fields = sorted(messages[full])
    rows = []
    for num, label, t, name, key in fields:
        k = kind_of(full, num, label, t, name, key)
        rows.append(f'    ({num}, "{name}", Kind::{k}),')
    out.append(f"pub const {const_name(full)}: &[Field] = &[")
    out.extend(rows)
    out.append("];")
out.append("")
out.append("/// The table of a message by its full protobuf name (`k8s.io.api.apps.v1.Deployment`).")
out.append("pub fn by_name(full: &str) -> Option<&'static [Field]> {")
out.append("    Some(match full {")
for full in order:
    if full.rsplit(".", 1)[1] in SKIP_MESSAGES or full in SPECIAL:
        continue
    out.append(f'        "{full}" => {const_name(full)},')
out.append("        _ => return None,")
out.append("    })")
out.append("}")
print("\n".join(out))
