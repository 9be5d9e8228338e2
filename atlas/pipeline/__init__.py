"""The build pipeline: jobs and keys, the artifact store, the planner and the runners."""
from .jobs import Job
from .planner import Plan, make_plan
from .runner import Runner, RunReport
from .store import Store

__all__ = ["Job", "Plan", "Runner", "RunReport", "Store", "make_plan"]
