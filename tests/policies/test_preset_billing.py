"""Decision table for the shipped `billing` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import gzip
import json

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import Row, case, check_decision, load_preset

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
    case("GET", f"{STRIPE}/v1/charges?limit=10", "allow", None, id="stripe-list-charges-flows"),
    case("GET", f"{STRIPE}/v1/customers/cus_123", "allow", None, id="stripe-get-customer-flows"),
    case("GET", f"{STRIPE}/v1/balance", "allow", None, id="stripe-get-balance-flows"),
    case("POST", f"{STRIPE}/v1/customers", "allow", None, headers=FORM,
         body=b"email=a%40example.com&name=Ada", id="stripe-create-customer-flows"),
    case("POST", f"{STRIPE}/v1/customers/cus_123", "allow", None, headers=FORM,
         body=b"metadata[plan]=pro", id="stripe-update-customer-metadata-flows"),
    case("POST", f"{STRIPE}/v1/checkout/sessions", "allow", None, headers=FORM,
         body=b"mode=payment&line_items[0][price]=price_1&line_items[0][quantity]=1",
         id="stripe-checkout-session-flows"),
    case("POST", f"{STRIPE}/v1/setup_intents", "allow", None, headers=FORM,
         body=b"customer=cus_123", id="stripe-setup-intent-flows"),
    case("POST", f"{STRIPE}/v1/test_helpers/test_clocks", "allow", None, headers=FORM,
         body=b"frozen_time=1700000000", id="stripe-test-clock-flows"),
    # Stripe money movement is held, critical.
    case("POST", f"{STRIPE}/v1/charges", "hold", "billing/stripe-charges", headers=FORM,
         body=b"amount=2000&currency=usd&source=tok_visa", id="stripe-charge-held"),
    case("POST", f"{STRIPE}/v1/charges/ch_1/capture", "hold", "billing/stripe-charges",
         headers=FORM, id="stripe-charge-capture-held"),
    case("POST", f"{STRIPE}/v1/payment_intents", "hold",
         "billing/stripe-payment-intent-create-and-confirm", headers=FORM,
         body=b"amount=5000&currency=usd&customer=cus_1&confirm=true",
         id="stripe-payment-intent-confirm-true-held-critical"),
    case("POST", f"{STRIPE}/v1/payment_intents", "hold",
         "billing/stripe-payment-intent-create-and-confirm", headers=GZIP_FORM,
         body=gzip.compress(b"amount=5000&currency=usd&confirm=true"),
         id="stripe-payment-intent-gzip-form-held-critical"),
    case("POST", f"{STRIPE}/v1/payment_intents", "hold",
         "billing/stripe-payment-intent-create-and-confirm", headers=GZIP_FORM,
         body=b"\x1f\x8b\x08\x00not really gzip",
         id="stripe-payment-intent-undecodable-body-fails-closed"),
    case("POST", f"{STRIPE}/v1/payment_intents", "hold", "billing/stripe-payment-intent-changes",
         headers=FORM, body=b"amount=5000&currency=usd",
         id="stripe-payment-intent-create-unconfirmed-held-high"),
    case("POST", f"{STRIPE}/v1/payment_intents/pi_1/confirm", "hold",
         "billing/stripe-payment-intent-confirm-capture", headers=FORM,
         body=b"payment_method=pm_card_visa", id="stripe-payment-intent-confirm-held"),
    case("POST", f"{STRIPE}/v1/payment_intents/pi_1/capture", "hold",
         "billing/stripe-payment-intent-confirm-capture", headers=FORM,
         body=b"amount_to_capture=1000", id="stripe-payment-intent-capture-held"),
    case("POST", f"{STRIPE}/v1/refunds", "hold", "billing/stripe-refunds", headers=FORM,
         body=b"charge=ch_1&amount=500", id="stripe-refund-held"),
    case("POST", f"{STRIPE}/v1//refunds/", "hold", "billing/stripe-refunds", headers=FORM,
         body=b"charge=ch_1", id="stripe-refund-spelled-around-held"),
    case("POST", f"{STRIPE}/v1/payouts", "hold", "billing/stripe-payouts", headers=FORM,
         body=b"amount=100000&currency=usd", id="stripe-payout-held"),
    case("POST", f"{STRIPE}/v1/transfers/tr_1/reversals", "hold", "billing/stripe-transfers",
         headers=FORM, id="stripe-transfer-reversal-held"),
    case("POST", f"{STRIPE}/v1/invoices/in_1/pay", "hold", "billing/stripe-invoice-pay",
         headers=FORM, id="stripe-invoice-pay-held"),
    # Stripe billing changes.
    case("POST", f"{STRIPE}/v1/invoices/in_1/finalize", "hold", "billing/stripe-invoice-changes",
         headers=FORM, id="stripe-invoice-finalize-held"),
    case("POST", f"{STRIPE}/v1/invoices/in_1/void", "hold", "billing/stripe-invoice-changes",
         headers=FORM, id="stripe-invoice-void-held"),
    case("POST", f"{STRIPE}/v1/subscriptions", "hold", "billing/stripe-subscription-create",
         headers=FORM, body=b"customer=cus_1&items[0][price]=price_1",
         id="stripe-subscription-create-held"),
    case("POST", f"{STRIPE}/v1/subscriptions/sub_1", "hold", "billing/stripe-subscription-changes",
         headers=FORM, body=b"cancel_at_period_end=true", id="stripe-subscription-update-held"),
    case("DELETE", f"{STRIPE}/v1/subscriptions/sub_1", "hold",
         "billing/stripe-subscription-changes", id="stripe-subscription-cancel-held"),
    case("DELETE", f"{STRIPE}/v1/customers/cus_1", "hold", "billing/stripe-customer-delete",
         id="stripe-customer-delete-held"),
    case("POST", f"{STRIPE}/v1/customers/cus_1", "hold", "billing/stripe-customer-balance",
         headers=FORM, body=b"balance=-5000", id="stripe-customer-balance-form-held"),
    case("POST", f"{STRIPE}/v1/prices", "hold", "billing/stripe-catalog-changes", headers=FORM,
         body=b"unit_amount=1500&currency=usd&product=prod_1", id="stripe-price-create-held"),
    case("POST", f"{STRIPE}/v1/products/prod_1", "hold", "billing/stripe-catalog-changes",
         headers=FORM, body=b"active=false", id="stripe-product-update-held"),
    case("DELETE", f"{STRIPE}/v1/accounts/acct_1", "hold", "billing/stripe-connect-account-delete",
         id="stripe-connect-delete-held"),
    case("POST", f"{STRIPE}/v1/accounts/acct_1/external_accounts", "hold",
         "billing/stripe-connect-changes", headers=FORM, body=b"external_account=btok_1",
         id="stripe-connect-bank-account-held"),
    case("POST", "https://connect.stripe.com/oauth/deauthorize", "hold",
         "billing/stripe-connect-changes", headers=FORM,
         body=b"client_id=ca_1&stripe_user_id=acct_1", id="stripe-connect-deauthorize-held"),
    case("POST", f"{STRIPE}/v1/webhook_endpoints", "hold", "billing/stripe-webhook-endpoints",
         headers=FORM, body=b"url=https%3A%2F%2Fevil.example%2Fhook&enabled_events[]=*",
         id="stripe-webhook-create-held"),
    case("POST", f"{STRIPE}/v2/iam/api_keys/key_1/rotate", "hold", "billing/stripe-api-keys",
         headers=JSON, body=b"{}", id="stripe-api-key-rotate-held"),
    # PayPal: tokens, buyer-approved orders and reads flow; money movement is held.
    case("POST", f"{PAYPAL}/v1/oauth2/token", "allow", None, headers=FORM,
         body=b"grant_type=client_credentials", id="paypal-oauth-token-flows"),
    case("POST", f"{PAYPAL}/v2/checkout/orders", "allow", None, headers=JSON,
         body=json.dumps({"intent": "CAPTURE", "purchase_units": [
                  {"amount": {"currency_code": "USD", "value": "10.00"}}]}).encode(),
         id="paypal-create-order-buyer-approves-flows"),
    case("GET", f"{PAYPAL}/v2/checkout/orders/5O190127TN364715T", "allow", None,
         id="paypal-get-order-flows"),
    case("POST", f"{PAYPAL}/v2/checkout/orders", "hold", "billing/paypal-order-with-saved-payment",
         headers=JSON,
         body=json.dumps({"intent": "CAPTURE", "payment_source": {
                  "paypal": {"vault_id": "8kk8451t"}}}).encode(),
         id="paypal-order-with-vaulted-payment-held"),
    case("POST", f"{PAYPAL}/v2/checkout/orders/5O190127TN364715T/capture", "hold",
         "billing/paypal-captures", headers=JSON, id="paypal-order-capture-held"),
    case("POST", f"{PAYPAL_SANDBOX}/v2/payments/captures/2GG2/refund", "hold",
         "billing/paypal-refunds", headers=JSON,
         body=b'{"amount": {"value": "10.00", "currency_code": "USD"}}',
         id="paypal-sandbox-refund-held"),
    case("POST", f"{PAYPAL}/v1/payments/payouts", "hold", "billing/paypal-payouts", headers=JSON,
         body=b'{"items": []}', id="paypal-payout-held"),
    case("POST", f"{PAYPAL}/v1/billing/subscriptions/I-1/cancel", "hold",
         "billing/paypal-subscription-changes", headers=JSON, body=b'{"reason": "x"}',
         id="paypal-subscription-cancel-held"),
    # Braintree GraphQL: queries and tokenizing flow, money mutations are held.
    case("POST", BRAINTREE, "allow", None, headers=JSON, body=graphql("query { ping }"),
         id="braintree-ping-query-flows"),
    case("POST", BRAINTREE, "allow", None, headers=JSON,
         body=graphql("mutation T($input: TokenizeCreditCardInput!) "
                      "{ tokenizeCreditCard(input: $input) { paymentMethod { id } } }"),
         id="braintree-tokenize-flows"),
    case("POST", BRAINTREE, "hold", "billing/braintree-money-mutations", headers=JSON,
         body=graphql("mutation C($input: ChargePaymentMethodInput!) "
                      "{ chargePaymentMethod(input: $input) { transaction { id } } }"),
         id="braintree-charge-held"),
    case("POST", BRAINTREE, "hold", "billing/braintree-money-mutations", headers=JSON,
         body=json.dumps({"extensions": {"persistedQuery": {"sha256Hash": "ab"}}}).encode(),
         id="braintree-persisted-query-held"),
    # Paddle and Adyen.
    case("GET", "https://api.paddle.com/subscriptions/sub_1", "allow", None,
         id="paddle-get-subscription-flows"),
    case("POST", "https://api.paddle.com/subscriptions/sub_1/cancel", "hold",
         "billing/paddle-subscription-changes", headers=JSON,
         body=b'{"effective_from": "immediately"}', id="paddle-subscription-cancel-held"),
    case("POST", "https://sandbox-api.paddle.com/adjustments", "hold",
         "billing/paddle-refunds-and-charges", headers=JSON,
         body=b'{"action": "refund", "transaction_id": "txn_1"}', id="paddle-refund-held"),
    case("POST", "https://checkout-test.adyen.com/v71/paymentMethods", "allow", None, headers=JSON,
         body=b'{"merchantAccount": "M"}', id="adyen-payment-methods-flows"),
    case("POST", "https://checkout-test.adyen.com/v71/payments", "hold", "billing/adyen-payments",
         headers=JSON, body=b'{"amount": {"value": 1000, "currency": "EUR"}}',
         id="adyen-payment-held"),
    case("POST",
         "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com"
         "/checkout/v71/payments/PSP1/refunds", "hold", "billing/adyen-payments", headers=JSON,
         body=b"{}", id="adyen-live-refund-held"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_billing_preset(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


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
