//! The Dockerfile parser: parser directives, continuation lines, heredocs, exec and shell forms, and
//! every instruction of the Dockerfile reference. Pure and fuzzable: no I/O, no panics on any input.

pub mod ast;
mod duration;
pub mod expand;
mod lex;
mod parse;

pub use ast::*;
pub use duration::parse_duration;
pub use expand::{expand, ExpandError};
pub use parse::parse;

/// A Dockerfile that cannot be parsed: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{}:{}: {message}", loc.line, loc.col)]
pub struct ParseError {
    pub loc: Loc,
    pub message: String,
}
