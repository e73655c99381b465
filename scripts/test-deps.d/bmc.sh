#!/bin/sh
# BMC tests (issue 6): ipmitool (the IPMI driver's client) and OpenIPMI's ipmi_sim (the IPMI BMC
# the tests and the VM e2e drive); redfishtool checks the Redfish emulator.
set -eu
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends ipmitool openipmi redfishtool
