//! Cartwheel example function: a tiered volume discount with a VIP bonus.
//!
//! Target `cart.lines.discounts.generate.run`. A WASI command: the platform writes the
//! input JSON (shaped by `input.graphql`) to stdin and reads the operations JSON from
//! stdout. A configuration error is reported on stderr with exit status 1, so the
//! run is logged as failed (and the discount skipped) instead of silently doing nothing.

mod decimal;
mod discount;

use std::io::{self, Read, Write};
use std::process;

fn main() {
    let mut raw = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut raw) {
        fail(&format!("cannot read the input: {}", e));
    }
    let input: discount::Input = match serde_json::from_slice(&raw) {
        Ok(input) => input,
        Err(e) => fail(&format!(
            "the input does not match input.graphql's shape: {}",
            e
        )),
    };
    let output = match discount::run(input) {
        Ok(output) => output,
        Err(message) => fail(&message),
    };
    let bytes = match serde_json::to_vec(&output) {
        Ok(bytes) => bytes,
        Err(e) => fail(&format!("cannot serialize the output: {}", e)),
    };
    if let Err(e) = io::stdout().lock().write_all(&bytes) {
        fail(&format!("cannot write the output: {}", e));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("discount-function: {}", message);
    process::exit(1);
}
