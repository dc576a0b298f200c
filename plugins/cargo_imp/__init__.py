"""IATA Cargo-IMP messages: reading their lines, parsing FHL house waybills, and mapping
them onto Section 321 records. Everything streams, and bad input becomes findings.
"""
