"""RequestContext: who and where a request runs, handed by the doors to every operation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DEFAULT_REGION = "us-east-1"
# Outside Lambda there is no account; ARNs then carry AWS's documentation placeholder account.
PLACEHOLDER_ACCOUNT = "000000000000"


@dataclass(frozen=True)
class RequestContext:
    """``request_id`` is also the log correlation id."""

    request_id: str
    region: str
    account_id: str

    @classmethod
    def from_lambda(cls, request_id: str, lambda_context: Any) -> RequestContext:
        """Region from the runtime's environment, account from the invoked function's ARN."""
        arn = getattr(lambda_context, "invoked_function_arn", "") or ""
        parts = arn.split(":")
        account = parts[4] if len(parts) > 4 and parts[4].isdigit() else PLACEHOLDER_ACCOUNT
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return cls(request_id=request_id, region=region, account_id=account)
