"""The customer's pages: the hosted refund form, the receipt, and the tracking page."""
