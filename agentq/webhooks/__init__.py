"""Completion webhooks, signed as Standard Webhooks (https://www.standardwebhooks.com/).

- ``signing``: each tenant's secret and the signature every delivery carries;
- ``targets``: which URLs and addresses may receive a webhook (checked at submit and again at
  delivery);
- ``delivery``: one signed POST to the address checked at that moment;
- ``queue``: the deliveries due, in Redis, claimed under a lease so none is lost with a worker.

The worker's ``worker.webhook_delivery`` runs deliveries on its event loop from the queue.
"""
