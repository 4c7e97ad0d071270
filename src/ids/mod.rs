//! Ids in Graph traffic: lexing tokens (`token`), deterministic minting (`mint`), the
//! per-session binding table and pairing (`table`), rewriting recorded text (`rewrite`,
//! over bodies compiled once by `template`) and walking JSON for ids (`walk`).

pub mod mint;
pub mod rewrite;
pub mod table;
pub mod template;
pub mod token;
pub mod walk;

pub use mint::{mint, Seed};
pub use rewrite::Rewriter;
pub use table::{BindOutcome, Bound, IdTable, Pair, Pairing};
pub use template::Template;
pub use token::{map_tokens, natural_form, render, scan, Canon, Form, Token, Tokens};
pub use walk::{call_scoped, collect, collect_appids, collect_stable, collect_stable_headers, visit_strings};
