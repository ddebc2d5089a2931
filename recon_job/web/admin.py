"""The admin API (filled in below the dashboard)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
