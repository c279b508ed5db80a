//! A Cartwheel function for `__CARTWHEEL_TARGET__`.
//!
//! A WASI command: the input JSON (shaped by `input.graphql`) on stdin, the operations
//! JSON on stdout. `run` starts with no operations: add the target's operations (see
//! `cartwheel fn schema --target __CARTWHEEL_TARGET__`) as your logic decides.

use std::io::{self, Read, Write};
use std::process;

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    cart: Cart,
    #[serde(rename = "__CARTWHEEL_OWNER__")]
    owner: Owner,
}

#[derive(Deserialize)]
struct Cart {
    lines: Vec<CartLine>,
}

#[derive(Deserialize)]
struct CartLine {
    #[allow(dead_code)]
    id: String,
    quantity: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Owner {
    metafield: Option<Metafield>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metafield {
    json_value: serde_json::Value,
}

#[derive(Serialize)]
struct Output {
    operations: Vec<serde_json::Value>,
}

fn run(input: Input) -> Output {
    let operations = Vec::new();
    let configuration = input.owner.metafield.map(|m| m.json_value);
    let item_count: i64 = input.cart.lines.iter().map(|line| line.quantity).sum();
    // Logs (stderr) are kept with every run, up to 1,000 bytes.
    eprintln!("{} items, configured: {}", item_count, configuration.is_some());
    Output { operations }
}

fn main() {
    let mut raw = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut raw) {
        fail(&format!("cannot read the input: {}", e));
    }
    let input: Input = match serde_json::from_slice(&raw) {
        Ok(input) => input,
        Err(e) => fail(&format!("the input does not match input.graphql: {}", e)),
    };
    let bytes = match serde_json::to_vec(&run(input)) {
        Ok(bytes) => bytes,
        Err(e) => fail(&format!("cannot serialize the output: {}", e)),
    };
    if let Err(e) = io::stdout().lock().write_all(&bytes) {
        fail(&format!("cannot write the output: {}", e));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{}", message);
    process::exit(1);
}
