"""Every price in one room: training time/VRAM/$ (training), serving $/month for every route
(serving), offers, measured throughput, provider cut-offs, and what a live deployment costs
(deployments). Pure functions over the catalog."""
