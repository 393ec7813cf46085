"""The static plan: one stage beside codegen, after the passes and before the build.

Rule: from a planned graph (its fusion groups and memory plan, read as IR facts
through `ir.fusion` and `ir.memory`) to the artifact's execution plan: which
kernels run (kernels.py), the steps, slots and packed weights (static_plan.py),
checked for hazards (hazards.py); weights cut into pages (weight_pages.py) and
scheduled through a frame pool (page_schedule.py, paging.py); the one exported
entry call (entry_plan.py); the memory account against a budget
(memory_budget.py). Like all of `targets/`, it imports only `ir`, `runtime` and
`targets`.
"""
