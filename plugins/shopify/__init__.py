"""Shopify sources: `shopify-csv` (admin "Export orders" CSV) and `shopify-json` (Admin REST
or GraphQL order JSON). Both parse into one neutral order shape (`mapping.ShopifyOrder`)
and share one mapping, so an order gets the same record and key from either input.
"""
