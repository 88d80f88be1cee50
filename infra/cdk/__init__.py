"""Kiln's AWS deployment: a CDK v2 app (docs/deploy.md). ``python -m infra.cdk.synth`` writes the
CloudFormation templates offline; ``cdk deploy --app "python -m infra.cdk.app"`` deploys them."""

import os

# jsii's banner about Node 20's end of life, on every run (Node 20 is what the machines have);
# set before any submodule starts the jsii runtime
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
