"""Scheduler: which runners are loaded, for how long, and who may use them."""

from nexus.scheduler.scheduler import Lease, LoadedModel, Runner, RunnerFactory, Scheduler

__all__ = ["Lease", "LoadedModel", "Runner", "RunnerFactory", "Scheduler"]
