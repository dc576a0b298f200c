"""The one error of the enrichment tables: a file that cannot be used at all."""

from s321.errors import S321Error


class EnrichmentError(S321Error):
    """An enrichment file that cannot be used at all (missing, unreadable, no key column)."""
