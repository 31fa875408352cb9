"""What runs on a runner host: ``srht builds runner`` takes jobs from the
broker queues of its images and runs each in a throwaway systemd-nspawn
container (``runner``: the process; ``job``: one job; ``images``: the
root file systems; ``cgroups``, ``network``: a job's limits and network;
``service``: the internal API it speaks; ``driver.sh``: what runs inside).
"""
