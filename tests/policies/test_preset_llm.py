"""Decision table for the shipped `llm` preset, loaded alone under `default: allow`.

An allow decided by a named rule is explicit, so it also flows under a user policy with
`default: hold`; cases with no rule (None) fall to the default.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Policy
from tests.policies.presetkit import Row, case, check_decision, load_preset

PRESET = "llm"
JSON = (("Content-Type", "application/json"),)
VERTEX = "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def model_call(method: str, url: str, action: str, rule: str | None, *, id: str) -> Any:
    """A row sent the way every client sends a model call: a JSON body naming a model."""
    return case(method, url, action, rule, id=id, headers=JSON, body=b'{"model":"m"}')


CASES = [
    # Anthropic.
    model_call("POST", "https://api.anthropic.com/v1/messages?beta=true", "allow",
               "llm/anthropic-inference", id="anthropic-messages-flows"),
    model_call("POST", "https://api.anthropic.com/v1/messages/count_tokens", "allow",
               "llm/anthropic-inference", id="anthropic-count-tokens-flows"),
    model_call("GET", "https://api.anthropic.com/v1/models", "allow", "llm/anthropic-inference",
               id="anthropic-models-flows"),
    model_call("GET", "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results", "allow",
               "llm/anthropic-inference", id="anthropic-batch-results-flows"),
    model_call("POST", "https://api.anthropic.com/v1/organizations/api_keys/apikey_1", "hold",
               "llm/anthropic-admin-change", id="anthropic-api-key-update-held"),
    model_call("POST", "https://api.anthropic.com/v1/organizations/invites", "hold",
               "llm/anthropic-admin-change", id="anthropic-invite-held"),
    model_call("GET", "https://api.anthropic.com/v1/organizations/api_keys", "allow", None,
               id="anthropic-admin-read-left-to-default"),
    model_call("GET", "https://api.anthropic.com/v1/messages", "allow", None,
               id="anthropic-messages-get-left-to-default"),
    model_call("POST", "https://api.anthropic.com/v1/messages/../organizations/invites", "hold",
               "llm/anthropic-admin-change", id="anthropic-dot-segments-to-admin-held"),
    # OpenAI and Codex.
    model_call("POST", "https://api.openai.com/v1/responses", "allow", "llm/openai-inference",
               id="openai-responses-flows"),
    model_call("POST", "https://api.openai.com/v1/chat/completions", "allow",
               "llm/openai-inference", id="openai-chat-completions-flows"),
    model_call("POST", "https://api.openai.com/v1/embeddings", "allow", "llm/openai-inference",
               id="openai-embeddings-flows"),
    model_call("GET", "https://api.openai.com/v1/responses/resp_1", "allow", "llm/openai-inference",
               id="openai-get-response-flows"),
    model_call("POST", "https://api.openai.com/v1/organization/admin_api_keys", "hold",
               "llm/openai-admin-change", id="openai-admin-key-create-held"),
    model_call("DELETE", "https://api.openai.com/v1/organization/projects/p/api_keys/k", "hold",
               "llm/openai-admin-change", id="openai-project-key-delete-held"),
    model_call("POST", "https://api.openai.com/v1/fine_tuning/jobs", "allow", None,
               id="openai-fine-tuning-left-to-default"),
    model_call("POST", "https://api.openai.com/v1/files", "allow", None,
               id="openai-files-upload-left-to-default"),
    model_call("POST", "https://chatgpt.com/backend-api/codex/responses", "allow",
               "llm/chatgpt-codex-inference", id="chatgpt-codex-responses-flows"),
    # Google.
    model_call("POST",
               "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
               "allow", "llm/gemini-inference", id="gemini-generate-flows"),
    model_call("POST",
               "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
               ":streamGenerateContent?alt=sse", "allow", "llm/gemini-inference",
               id="gemini-stream-flows"),
    model_call("POST", "https://generativelanguage.googleapis.com/v1beta/tunedModels", "allow",
               None, id="gemini-tuning-left-to-default"),
    model_call("POST",
               "https://cloudcode-pa.googleapis.com/v1internal:streamGenerateContent?alt=sse",
               "allow", "llm/gemini-code-assist-inference", id="gemini-cli-code-assist-flows"),
    model_call("POST", VERTEX + "/anthropic/models/claude-sonnet-4:streamRawPredict", "allow",
               "llm/vertex-ai-inference", id="vertex-claude-raw-predict-flows"),
    model_call("POST", VERTEX + "/google/models/gemini-2.5-pro:generateContent", "allow",
               "llm/vertex-ai-inference", id="vertex-gemini-generate-flows"),
    model_call("POST",
               "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/"
               "endpoints/e:deployModel", "allow", None,
               id="vertex-endpoint-deploy-left-to-default"),
    # Bedrock and Azure.
    model_call("POST",
               "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
               "us.anthropic.claude-sonnet-4-20250514-v1:0/converse-stream", "allow",
               "llm/bedrock-inference", id="bedrock-converse-stream-flows"),
    model_call("POST",
               "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
               "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/invoke", "allow",
               "llm/bedrock-inference", id="bedrock-invoke-arn-model-flows"),
    model_call("POST", "https://bedrock.us-east-1.amazonaws.com/model-customization-jobs", "allow",
               None, id="bedrock-control-plane-left-to-default"),
    model_call("POST",
               "https://acme.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
               "?api-version=2024-10-21", "allow", "llm/azure-openai-inference",
               id="azure-openai-deployment-chat-flows"),
    model_call("POST", "https://acme.openai.azure.com/openai/v1/responses", "allow",
               "llm/azure-openai-inference", id="azure-openai-v1-responses-flows"),
    # Other providers.
    model_call("POST", "https://codestral.mistral.ai/v1/fim/completions", "allow",
               "llm/mistral-inference", id="mistral-fim-flows"),
    model_call("POST", "https://api.groq.com/openai/v1/chat/completions", "allow",
               "llm/groq-inference", id="groq-chat-flows"),
    model_call("POST", "https://openrouter.ai/api/v1/chat/completions", "allow",
               "llm/openrouter-inference", id="openrouter-chat-flows"),
    model_call("POST", "https://openrouter.ai/api/v1/keys", "allow", None,
               id="openrouter-keys-left-to-default"),
    model_call("POST", "https://api.together.xyz/v1/chat/completions", "allow",
               "llm/together-inference", id="together-chat-flows"),
    model_call("POST", "https://api.deepseek.com/chat/completions", "allow",
               "llm/deepseek-inference", id="deepseek-chat-flows"),
    model_call("POST", "https://api.deepseek.com/anthropic/v1/messages", "allow",
               "llm/deepseek-inference", id="deepseek-anthropic-compatible-flows"),
    model_call("POST", "https://api.x.ai/v1/chat/completions", "allow", "llm/xai-inference",
               id="xai-chat-flows"),
    model_call("POST", "https://api.githubcopilot.com/chat/completions", "allow",
               "llm/github-copilot-inference", id="copilot-chat-flows"),
    # Lookalike hosts get no rule.
    model_call("POST", "https://api.anthropic.com.evil.example/v1/messages", "allow", None,
               id="lookalike-host-left-to-default"),
    model_call("POST", "https://evil.api.openai.com.example/v1/responses", "allow", None,
               id="http-lookalike-subdomain-left-to-default"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_decide(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
