"""Decision table for the shipped `billing` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import gzip
import json

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

FORM = [("Content-Type", "application/x-www-form-urlencoded")]
GZIP_FORM = [*FORM, ("Content-Encoding", "gzip")]
JSON = [("Content-Type", "application/json")]
STRIPE = "https://api.stripe.com"
PAYPAL = "https://api-m.paypal.com"
PAYPAL_SANDBOX = "https://api-m.sandbox.paypal.com"
BRAINTREE = "https://payments.sandbox.braintree-api.com/graphql"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, "billing")


def graphql(query: str) -> bytes:
    return json.dumps({"query": query, "variables": {}}).encode()


CASES = [
    # Stripe reads and harmless creates flow.
    pytest.param("GET", f"{STRIPE}/v1/charges?limit=10", [], b"", "allow", None,
                 id="stripe-list-charges-flows"),
    pytest.param("GET", f"{STRIPE}/v1/customers/cus_123", [], b"", "allow", None,
                 id="stripe-get-customer-flows"),
    pytest.param("GET", f"{STRIPE}/v1/balance", [], b"", "allow", None,
                 id="stripe-get-balance-flows"),
    pytest.param("POST", f"{STRIPE}/v1/customers", FORM, b"email=a%40example.com&name=Ada",
                 "allow", None, id="stripe-create-customer-flows"),
    pytest.param("POST", f"{STRIPE}/v1/customers/cus_123", FORM, b"metadata[plan]=pro",
                 "allow", None, id="stripe-update-customer-metadata-flows"),
    pytest.param("POST", f"{STRIPE}/v1/checkout/sessions", FORM,
                 b"mode=payment&line_items[0][price]=price_1&line_items[0][quantity]=1",
                 "allow", None, id="stripe-checkout-session-flows"),
    pytest.param("POST", f"{STRIPE}/v1/setup_intents", FORM, b"customer=cus_123",
                 "allow", None, id="stripe-setup-intent-flows"),
    pytest.param("POST", f"{STRIPE}/v1/test_helpers/test_clocks", FORM, b"frozen_time=1700000000",
                 "allow", None, id="stripe-test-clock-flows"),
    # Stripe money movement is held, critical.
    pytest.param("POST", f"{STRIPE}/v1/charges", FORM,
                 b"amount=2000&currency=usd&source=tok_visa", "hold", "billing/stripe-charges",
                 id="stripe-charge-held"),
    pytest.param("POST", f"{STRIPE}/v1/charges/ch_1/capture", FORM, b"", "hold",
                 "billing/stripe-charges", id="stripe-charge-capture-held"),
    pytest.param("POST", f"{STRIPE}/v1/payment_intents", FORM,
                 b"amount=5000&currency=usd&customer=cus_1&confirm=true", "hold",
                 "billing/stripe-payment-intent-create-and-confirm",
                 id="stripe-payment-intent-confirm-true-held-critical"),
    pytest.param("POST", f"{STRIPE}/v1/payment_intents", GZIP_FORM,
                 gzip.compress(b"amount=5000&currency=usd&confirm=true"), "hold",
                 "billing/stripe-payment-intent-create-and-confirm",
                 id="stripe-payment-intent-gzip-form-held-critical"),
    pytest.param("POST", f"{STRIPE}/v1/payment_intents", GZIP_FORM,
                 b"\x1f\x8b\x08\x00not really gzip", "hold",
                 "billing/stripe-payment-intent-create-and-confirm",
                 id="stripe-payment-intent-undecodable-body-fails-closed"),
    pytest.param("POST", f"{STRIPE}/v1/payment_intents", FORM,
                 b"amount=5000&currency=usd", "hold", "billing/stripe-payment-intent-changes",
                 id="stripe-payment-intent-create-unconfirmed-held-high"),
    pytest.param("POST", f"{STRIPE}/v1/payment_intents/pi_1/confirm", FORM,
                 b"payment_method=pm_card_visa", "hold",
                 "billing/stripe-payment-intent-confirm-capture",
                 id="stripe-payment-intent-confirm-held"),
    pytest.param("POST", f"{STRIPE}/v1/payment_intents/pi_1/capture", FORM,
                 b"amount_to_capture=1000", "hold",
                 "billing/stripe-payment-intent-confirm-capture",
                 id="stripe-payment-intent-capture-held"),
    pytest.param("POST", f"{STRIPE}/v1/refunds", FORM, b"charge=ch_1&amount=500", "hold",
                 "billing/stripe-refunds", id="stripe-refund-held"),
    pytest.param("POST", f"{STRIPE}/v1//refunds/", FORM, b"charge=ch_1", "hold",
                 "billing/stripe-refunds", id="stripe-refund-spelled-around-held"),
    pytest.param("POST", f"{STRIPE}/v1/payouts", FORM, b"amount=100000&currency=usd", "hold",
                 "billing/stripe-payouts", id="stripe-payout-held"),
    pytest.param("POST", f"{STRIPE}/v1/transfers/tr_1/reversals", FORM, b"", "hold",
                 "billing/stripe-transfers", id="stripe-transfer-reversal-held"),
    pytest.param("POST", f"{STRIPE}/v1/invoices/in_1/pay", FORM, b"", "hold",
                 "billing/stripe-invoice-pay", id="stripe-invoice-pay-held"),
    # Stripe billing changes.
    pytest.param("POST", f"{STRIPE}/v1/invoices/in_1/finalize", FORM, b"", "hold",
                 "billing/stripe-invoice-changes", id="stripe-invoice-finalize-held"),
    pytest.param("POST", f"{STRIPE}/v1/invoices/in_1/void", FORM, b"", "hold",
                 "billing/stripe-invoice-changes", id="stripe-invoice-void-held"),
    pytest.param("POST", f"{STRIPE}/v1/subscriptions", FORM,
                 b"customer=cus_1&items[0][price]=price_1", "hold",
                 "billing/stripe-subscription-create", id="stripe-subscription-create-held"),
    pytest.param("POST", f"{STRIPE}/v1/subscriptions/sub_1", FORM,
                 b"cancel_at_period_end=true", "hold", "billing/stripe-subscription-changes",
                 id="stripe-subscription-update-held"),
    pytest.param("DELETE", f"{STRIPE}/v1/subscriptions/sub_1", [], b"", "hold",
                 "billing/stripe-subscription-changes", id="stripe-subscription-cancel-held"),
    pytest.param("DELETE", f"{STRIPE}/v1/customers/cus_1", [], b"", "hold",
                 "billing/stripe-customer-delete", id="stripe-customer-delete-held"),
    pytest.param("POST", f"{STRIPE}/v1/customers/cus_1", FORM, b"balance=-5000", "hold",
                 "billing/stripe-customer-balance", id="stripe-customer-balance-form-held"),
    pytest.param("POST", f"{STRIPE}/v1/prices", FORM,
                 b"unit_amount=1500&currency=usd&product=prod_1", "hold",
                 "billing/stripe-catalog-changes", id="stripe-price-create-held"),
    pytest.param("POST", f"{STRIPE}/v1/products/prod_1", FORM, b"active=false", "hold",
                 "billing/stripe-catalog-changes", id="stripe-product-update-held"),
    pytest.param("DELETE", f"{STRIPE}/v1/accounts/acct_1", [], b"", "hold",
                 "billing/stripe-connect-account-delete", id="stripe-connect-delete-held"),
    pytest.param("POST", f"{STRIPE}/v1/accounts/acct_1/external_accounts", FORM,
                 b"external_account=btok_1", "hold", "billing/stripe-connect-changes",
                 id="stripe-connect-bank-account-held"),
    pytest.param("POST", "https://connect.stripe.com/oauth/deauthorize", FORM,
                 b"client_id=ca_1&stripe_user_id=acct_1", "hold", "billing/stripe-connect-changes",
                 id="stripe-connect-deauthorize-held"),
    pytest.param("POST", f"{STRIPE}/v1/webhook_endpoints", FORM,
                 b"url=https%3A%2F%2Fevil.example%2Fhook&enabled_events[]=*", "hold",
                 "billing/stripe-webhook-endpoints", id="stripe-webhook-create-held"),
    pytest.param("POST", f"{STRIPE}/v2/iam/api_keys/key_1/rotate", JSON, b"{}", "hold",
                 "billing/stripe-api-keys", id="stripe-api-key-rotate-held"),
    # PayPal: tokens, buyer-approved orders and reads flow; money movement is held.
    pytest.param("POST", f"{PAYPAL}/v1/oauth2/token", FORM, b"grant_type=client_credentials",
                 "allow", None, id="paypal-oauth-token-flows"),
    pytest.param("POST", f"{PAYPAL}/v2/checkout/orders", JSON,
                 json.dumps({"intent": "CAPTURE", "purchase_units": [
                     {"amount": {"currency_code": "USD", "value": "10.00"}}]}).encode(),
                 "allow", None, id="paypal-create-order-buyer-approves-flows"),
    pytest.param("GET", f"{PAYPAL}/v2/checkout/orders/5O190127TN364715T", [], b"", "allow",
                 None, id="paypal-get-order-flows"),
    pytest.param("POST", f"{PAYPAL}/v2/checkout/orders", JSON,
                 json.dumps({"intent": "CAPTURE", "payment_source": {
                     "paypal": {"vault_id": "8kk8451t"}}}).encode(),
                 "hold", "billing/paypal-order-with-saved-payment",
                 id="paypal-order-with-vaulted-payment-held"),
    pytest.param("POST", f"{PAYPAL}/v2/checkout/orders/5O190127TN364715T/capture", JSON, b"",
                 "hold", "billing/paypal-captures", id="paypal-order-capture-held"),
    pytest.param("POST", f"{PAYPAL_SANDBOX}/v2/payments/captures/2GG2/refund", JSON,
                 b'{"amount": {"value": "10.00", "currency_code": "USD"}}', "hold",
                 "billing/paypal-refunds", id="paypal-sandbox-refund-held"),
    pytest.param("POST", f"{PAYPAL}/v1/payments/payouts", JSON, b'{"items": []}', "hold",
                 "billing/paypal-payouts", id="paypal-payout-held"),
    pytest.param("POST", f"{PAYPAL}/v1/billing/subscriptions/I-1/cancel", JSON,
                 b'{"reason": "x"}', "hold", "billing/paypal-subscription-changes",
                 id="paypal-subscription-cancel-held"),
    # Braintree GraphQL: queries and tokenizing flow, money mutations are held.
    pytest.param("POST", BRAINTREE, JSON, graphql("query { ping }"), "allow", None,
                 id="braintree-ping-query-flows"),
    pytest.param("POST", BRAINTREE, JSON,
                 graphql("mutation T($input: TokenizeCreditCardInput!) "
                         "{ tokenizeCreditCard(input: $input) { paymentMethod { id } } }"),
                 "allow", None, id="braintree-tokenize-flows"),
    pytest.param("POST", BRAINTREE, JSON,
                 graphql("mutation C($input: ChargePaymentMethodInput!) "
                         "{ chargePaymentMethod(input: $input) { transaction { id } } }"),
                 "hold", "billing/braintree-money-mutations", id="braintree-charge-held"),
    pytest.param("POST", BRAINTREE, JSON,
                 json.dumps({"extensions": {"persistedQuery": {"sha256Hash": "ab"}}}).encode(),
                 "hold", "billing/braintree-money-mutations",
                 id="braintree-persisted-query-held"),
    # Paddle and Adyen.
    pytest.param("GET", "https://api.paddle.com/subscriptions/sub_1", [], b"", "allow", None,
                 id="paddle-get-subscription-flows"),
    pytest.param("POST", "https://api.paddle.com/subscriptions/sub_1/cancel", JSON,
                 b'{"effective_from": "immediately"}', "hold",
                 "billing/paddle-subscription-changes", id="paddle-subscription-cancel-held"),
    pytest.param("POST", "https://sandbox-api.paddle.com/adjustments", JSON,
                 b'{"action": "refund", "transaction_id": "txn_1"}', "hold",
                 "billing/paddle-refunds-and-charges", id="paddle-refund-held"),
    pytest.param("POST", "https://checkout-test.adyen.com/v71/paymentMethods", JSON,
                 b'{"merchantAccount": "M"}', "allow", None,
                 id="adyen-payment-methods-flows"),
    pytest.param("POST", "https://checkout-test.adyen.com/v71/payments", JSON,
                 b'{"amount": {"value": 1000, "currency": "EUR"}}', "hold",
                 "billing/adyen-payments", id="adyen-payment-held"),
    pytest.param("POST",
                 "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com"
                 "/checkout/v71/payments/PSP1/refunds", JSON, b"{}", "hold",
                 "billing/adyen-payments", id="adyen-live-refund-held"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "headers", "body", "action", "rule"), CASES)
def test_billing_preset(
    policy: Policy,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    action: str,
    rule: str | None,
) -> None:
    decision = policy.decide(build_request(method, url, headers, body))
    assert (decision.action, decision.rule) == (action, rule), decision.reason


def test_money_moving_holds_are_critical(policy: Policy) -> None:
    charge = build_request("POST", f"{STRIPE}/v1/charges", FORM, b"amount=1&currency=usd")
    intent = build_request("POST", f"{STRIPE}/v1/payment_intents", FORM, b"amount=1&currency=usd")
    assert policy.decide(charge).severity == "critical"
    assert policy.decide(intent).severity == "high"


def test_every_hold_has_a_reason(policy: Policy) -> None:
    view = build_request("POST", f"{STRIPE}/v1/payouts", FORM, b"amount=1&currency=usd")
    decision = policy.decide(view)
    assert decision.action == "hold"
    assert "payout" in decision.reason.lower()
