"""The shipment control number list of a trip, printable, for the driver and the broker.

Promises: the list shows what the border needs to find the trip and its shipments (trip
number, port, estimated arrival, truck and trailers, each shipment control number, and
what the ledger knows of it) and no crew data: names, dates of birth and documents stay
in the trip file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from .trip import Trip

StateOf = Callable[[str], str | None]
"""Shipment control number -> what the ledger says of its record (`accepted`...), or None."""


def manifest_list(trip: Trip, state_of: StateOf | None = None) -> str:
    """The trip's list as plain text (80 columns)."""
    arrival = trip.estimated_arrival
    plate = trip.conveyance.license_plate
    lines = [
        f"ACE truck eManifest - trip {trip.trip_number}" + ("  (FAST)" if trip.fast else ""),
        f"Carrier SCAC:        {trip.scac}",
        f"US port of arrival:  {trip.port_of_arrival}",
        f"Estimated arrival:   {arrival.isoformat(timespec='minutes')} "
        f"({arrival.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC)",
        f"File with ACE by:    {trip.deadline().astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC",
        f"Truck:               {trip.conveyance.number}"
        + (f", plate {plate.number} ({plate.state_or_province or plate.country})" if plate else ""),
    ]
    for equipment in trip.equipment:
        lines.append(f"Trailer:             {equipment.number}")
    lines += ["", f"Shipments ({len(trip.shipments)}):", f"  {'#':>3}  {'shipment control number':<24}  status"]
    for n, scn in enumerate(trip.shipments, start=1):
        state = (state_of(scn) if state_of else None) or ("not in the ledger" if state_of else "")
        lines.append(f"  {n:>3}  {scn:<24}  {state}".rstrip())
    lines += ["", "Each PAPS shipment still needs its broker's entry: give the broker its shipment",
              "control number before dispatch. The 309 alone does not clear the goods."]
    return "\n".join(lines) + "\n"
