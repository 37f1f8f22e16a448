# dom0 companion of host_path: xenpv-run's real-host path, run in the
# lab's dom0 (a real Xen dom0 with xl). xenpv-run (a static build, in
# /payload/bin) writes its own payload to a folder of /tmp and runs the
# same plan and lab.sh the lab runs, reading the consoles' ptys:
# the application is this guest's image with `inner`, its peer the same
# image without. The application exits with code 3, so xenpv-run must too.
xenpv-run --xen host --name host_path_inner --memory 8 --timeout 50 \
    --guest host_path_peer=/payload/host_path.elf /payload/host_path.elf inner 2>&1
echo "xenpv-run exit $?"
