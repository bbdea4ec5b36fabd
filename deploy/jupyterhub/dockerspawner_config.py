"""JupyterHub with DockerSpawner: each student's server runs netlab's image under netlab's seccomp profile.

Merge this into your jupyterhub_config.py (README, "Running a class on JupyterHub"). Copy
deploy/seccomp/netlab.json to /etc/jupyterhub/netlab-seccomp.json on the hub's machine (or set
NETLAB_SECCOMP_PROFILE to its path): the Docker daemon takes a profile only as JSON text in
security_opt, a path is refused, so the hub reads the file and passes its text.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub defines it when it reads this file)

PROFILE = Path(os.environ.get("NETLAB_SECCOMP_PROFILE", "/etc/jupyterhub/netlab-seccomp.json"))

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = "netlab-notebook:latest"  # built with deploy/Containerfile
# Every capability dropped and no privilege escalation: the lab needs neither, only the profile's
# rules (one per namespace call netlab makes, each with its reason in deploy/seccomp/generate.py).
c.DockerSpawner.extra_host_config = {
    "security_opt": [f"seccomp={PROFILE.read_text()}", "no-new-privileges"],
    "cap_drop": ["ALL"],
}
# A named volume per student keeps their work; Docker fills a new volume with the image's
# /home/jovyan, the notebooks in /home/jovyan/netlab among it.
c.DockerSpawner.volumes = {"jupyterhub-user-{username}": "/home/jovyan"}
c.DockerSpawner.notebook_dir = "/home/jovyan"
c.DockerSpawner.remove = True
# The hub and the students' containers on one Docker network, created once with
# `docker network create jupyterhub`; the hub listens where the containers can reach it.
c.DockerSpawner.network_name = "jupyterhub"
c.JupyterHub.hub_ip = "0.0.0.0"
