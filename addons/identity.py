"""Who is asking: proxy credentials bound at CONNECT, else the policy's address ranges."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from policies.model import ANONYMOUS
from proxy.gate import Verdict, new_request_id
from proxy.outcomes import SYSTEM, Outcome
from proxy.tokens import TokenStore


class Identity:
    """Resolves the agent of a request; `required` refuses clients with no identity at all."""

    def __init__(
        self,
        tokens: TokenStore | None,
        agent_for_address: Callable[[str], str | None],
        *,
        required: bool,
    ) -> None:
        self.tokens = tokens
        self.agent_for_address = agent_for_address
        self.required = required

    def resolve(
        self, header: str | None, bound: str | None, client_ip: str
    ) -> tuple[str, Verdict | None]:
        """(agent, None), or (anonymous, a 407 refusal) for bad or missing credentials.

        `header` is this request's Proxy-Authorization; `bound` the one its connection's CONNECT
        carried (HTTPS requests inside a tunnel carry none). Bound credentials are checked again
        on every request, so removing an agent also closes the tunnels it already opened.
        """
        credentials = header if header is not None else bound
        if credentials is not None:
            name = self._verify(credentials)
            if name is None:
                return ANONYMOUS, _challenge("the proxy credentials are not valid")
            return name, None
        by_address = self.agent_for_address(client_ip) if client_ip else None
        if by_address is not None:
            return by_address, None
        if self.required:
            return ANONYMOUS, _challenge("proxy authentication is required")
        return ANONYMOUS, None

    def _verify(self, header: str) -> str | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or self.tokens is None:
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, token = decoded.partition(":")
        if not sep or not self.tokens.verify_agent(name, token):
            return None
        return name


def _challenge(reason: str) -> Verdict:
    request_id = new_request_id()
    body = {
        "error": "proxy_auth_required",
        "outcome": Outcome.DENIED.value,
        "rule": None,
        "reason": reason,
        "request_id": request_id,
        "decided_by": SYSTEM,
        "message": (
            f"Interlock refused this request: {reason}. Use the proxy URL with the "
            "agent's credentials, http://NAME:TOKEN@host:port (see `interlock agents`)."
        ),
    }
    headers = {
        "Proxy-Authenticate": 'Basic realm="interlock"',
        "X-Interlock-Decision": Outcome.DENIED.value,
    }
    return Verdict(Outcome.DENIED, request_id, 407, body, headers)
