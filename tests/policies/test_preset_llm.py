"""Decision table for the shipped `llm` preset, loaded alone under `default: allow`.

An allow decided by a named rule is explicit, so it also flows under a user policy with
`default: hold`; cases with no rule (None) fall to the default.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

PRESET = "llm"
JSON = (("Content-Type", "application/json"),)
VERTEX = "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def case(case_id: str, method: str, url: str, action: str, rule_name: str | None) -> Any:
    rule_name = f"{PRESET}/{rule_name}" if rule_name else None
    return pytest.param(method, url, action, rule_name, id=case_id)


CASES = [
    # Anthropic.
    case("anthropic-messages-flows", "POST", "https://api.anthropic.com/v1/messages?beta=true",
         "allow", "anthropic-inference"),
    case("anthropic-count-tokens-flows", "POST",
         "https://api.anthropic.com/v1/messages/count_tokens", "allow", "anthropic-inference"),
    case("anthropic-models-flows", "GET", "https://api.anthropic.com/v1/models", "allow",
         "anthropic-inference"),
    case("anthropic-batch-results-flows", "GET",
         "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results", "allow",
         "anthropic-inference"),
    case("anthropic-api-key-update-held", "POST",
         "https://api.anthropic.com/v1/organizations/api_keys/apikey_1", "hold",
         "anthropic-admin-change"),
    case("anthropic-invite-held", "POST", "https://api.anthropic.com/v1/organizations/invites",
         "hold", "anthropic-admin-change"),
    case("anthropic-admin-read-left-to-default", "GET",
         "https://api.anthropic.com/v1/organizations/api_keys", "allow", None),
    case("anthropic-messages-get-left-to-default", "GET", "https://api.anthropic.com/v1/messages",
         "allow", None),
    case("anthropic-dot-segments-to-admin-held", "POST",
         "https://api.anthropic.com/v1/messages/../organizations/invites", "hold",
         "anthropic-admin-change"),
    # OpenAI and Codex.
    case("openai-responses-flows", "POST", "https://api.openai.com/v1/responses", "allow",
         "openai-inference"),
    case("openai-chat-completions-flows", "POST", "https://api.openai.com/v1/chat/completions",
         "allow", "openai-inference"),
    case("openai-embeddings-flows", "POST", "https://api.openai.com/v1/embeddings", "allow",
         "openai-inference"),
    case("openai-get-response-flows", "GET", "https://api.openai.com/v1/responses/resp_1", "allow",
         "openai-inference"),
    case("openai-admin-key-create-held", "POST",
         "https://api.openai.com/v1/organization/admin_api_keys", "hold", "openai-admin-change"),
    case("openai-project-key-delete-held", "DELETE",
         "https://api.openai.com/v1/organization/projects/p/api_keys/k", "hold",
         "openai-admin-change"),
    case("openai-fine-tuning-left-to-default", "POST", "https://api.openai.com/v1/fine_tuning/jobs",
         "allow", None),
    case("openai-files-upload-left-to-default", "POST", "https://api.openai.com/v1/files", "allow",
         None),
    case("chatgpt-codex-responses-flows", "POST", "https://chatgpt.com/backend-api/codex/responses",
         "allow", "chatgpt-codex-inference"),
    # Google.
    case("gemini-generate-flows", "POST",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
         "allow", "gemini-inference"),
    case("gemini-stream-flows", "POST",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
         ":streamGenerateContent?alt=sse", "allow", "gemini-inference"),
    case("gemini-tuning-left-to-default", "POST",
         "https://generativelanguage.googleapis.com/v1beta/tunedModels", "allow", None),
    case("gemini-cli-code-assist-flows", "POST",
         "https://cloudcode-pa.googleapis.com/v1internal:streamGenerateContent?alt=sse", "allow",
         "gemini-code-assist-inference"),
    case("vertex-claude-raw-predict-flows", "POST",
         VERTEX + "/anthropic/models/claude-sonnet-4:streamRawPredict", "allow",
         "vertex-ai-inference"),
    case("vertex-gemini-generate-flows", "POST",
         VERTEX + "/google/models/gemini-2.5-pro:generateContent", "allow", "vertex-ai-inference"),
    case("vertex-endpoint-deploy-left-to-default", "POST",
         "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/"
         "endpoints/e:deployModel", "allow", None),
    # Bedrock and Azure.
    case("bedrock-converse-stream-flows", "POST",
         "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
         "us.anthropic.claude-sonnet-4-20250514-v1:0/converse-stream", "allow",
         "bedrock-inference"),
    case("bedrock-invoke-arn-model-flows", "POST",
         "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
         "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/invoke", "allow",
         "bedrock-inference"),
    case("bedrock-control-plane-left-to-default", "POST",
         "https://bedrock.us-east-1.amazonaws.com/model-customization-jobs", "allow", None),
    case("azure-openai-deployment-chat-flows", "POST",
         "https://acme.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
         "?api-version=2024-10-21", "allow", "azure-openai-inference"),
    case("azure-openai-v1-responses-flows", "POST",
         "https://acme.openai.azure.com/openai/v1/responses", "allow", "azure-openai-inference"),
    # Other providers.
    case("mistral-fim-flows", "POST", "https://codestral.mistral.ai/v1/fim/completions", "allow",
         "mistral-inference"),
    case("groq-chat-flows", "POST", "https://api.groq.com/openai/v1/chat/completions", "allow",
         "groq-inference"),
    case("openrouter-chat-flows", "POST", "https://openrouter.ai/api/v1/chat/completions", "allow",
         "openrouter-inference"),
    case("openrouter-keys-left-to-default", "POST", "https://openrouter.ai/api/v1/keys", "allow",
         None),
    case("together-chat-flows", "POST", "https://api.together.xyz/v1/chat/completions", "allow",
         "together-inference"),
    case("deepseek-chat-flows", "POST", "https://api.deepseek.com/chat/completions", "allow",
         "deepseek-inference"),
    case("deepseek-anthropic-compatible-flows", "POST",
         "https://api.deepseek.com/anthropic/v1/messages", "allow", "deepseek-inference"),
    case("xai-chat-flows", "POST", "https://api.x.ai/v1/chat/completions", "allow",
         "xai-inference"),
    case("copilot-chat-flows", "POST", "https://api.githubcopilot.com/chat/completions", "allow",
         "github-copilot-inference"),
    # Lookalike hosts get no rule.
    case("lookalike-host-left-to-default", "POST",
         "https://api.anthropic.com.evil.example/v1/messages", "allow", None),
    case("http-lookalike-subdomain-left-to-default", "POST",
         "https://evil.api.openai.com.example/v1/responses", "allow", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "action", "rule_name"), CASES)
def test_decide(policy: Policy, method: str, url: str, action: str, rule_name: str | None) -> None:
    decision = policy.decide(build_request(method, url, JSON, b'{"model":"m"}'))
    assert (decision.action, decision.rule) == (action, rule_name)


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
