from functions_sdk.cli import fn

fn()
