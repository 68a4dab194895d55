"""What users call (`import gateway as tg`): plan, launch, jobs, export, deploy, doctor,
migrate, and the one resolver of what a user names (sources). Imports evaluate, exporters,
providers and the core; nothing below imports it."""
