//! The deployed stack's Outputs (CloudFormation `DescribeStacks`), so the operator names the
//! stack once instead of copying its table name, secrets prefix and secret ARN.

use std::collections::HashMap;

/// The Outputs of `stack` as key → value; a clear sentence when the stack is not there.
pub async fn outputs(cfg: &aws_config::SdkConfig, stack: &str) -> Result<HashMap<String, String>, String> {
    let client = aws_sdk_cloudformation::Client::new(cfg);
    let out = client.describe_stacks().stack_name(stack).send().await.map_err(|e| {
        let text = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
        if text.contains("does not exist") {
            format!(
                "no stack named {stack} in this account and region (sam deploy's stack name, e.g. butterfly-identity)"
            )
        } else {
            format!("cannot read the stack {stack}: {}", butterfly_core::text::clean(&text, 300))
        }
    })?;
    let s = out.stacks().first().ok_or_else(|| format!("no stack named {stack} in this account and region"))?;
    Ok(s.outputs().iter().filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string()))).collect())
}
