"""osbuild-composer cloud API v2: composes, their requests and generated recipes."""
