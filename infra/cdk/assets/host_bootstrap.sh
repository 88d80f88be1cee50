# Kiln build host: the body of the launch template's user data (infra/cdk/build_hosts.py).
# The construct puts a header before this: `set -euo pipefail`, KILN_AGENT_BUNDLE (the s3:// URL
# of the agent bundle: builders/, chalicelib/, requirements*.txt, a CDK asset), KILN_REGION,
# KILN_HOST_PACKAGES, and /etc/kiln/host.env.static (the fleet's environment, one KEY=value a
# line). Debian 12, run once by cloud-init as root.
exec > >(tee -a /var/log/kiln-bootstrap.log) 2>&1
export DEBIAN_FRONTEND=noninteractive

imds() {  # IMDSv2 (the launch template requires tokens)
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

# -- packages: what `make host-deps` installs (Makefile HOST_PACKAGES), the AWS CLI, the venv
apt-get update -q
# shellcheck disable=SC2086  # KILN_HOST_PACKAGES is a word list
apt-get install -y -q --no-install-recommends $KILN_HOST_PACKAGES \
  python3 python3-venv awscli unzip curl ca-certificates
case "$(dpkg --print-architecture)" in
  arm64) deb_arch=arm64 ;;
  *) deb_arch=amd64 ;;
esac
# Session Manager instead of SSH: Debian's AMIs do not ship the SSM agent
if ! systemctl is-active --quiet amazon-ssm-agent; then
  curl -sf -o /tmp/amazon-ssm-agent.deb \
    "https://s3.${KILN_REGION}.amazonaws.com/amazon-ssm-${KILN_REGION}/latest/debian_${deb_arch}/amazon-ssm-agent.deb"
  dpkg -i /tmp/amazon-ssm-agent.deb
  systemctl enable --now amazon-ssm-agent
fi

# -- the agent: the bundle, in a venv with the host's Python dependencies (pinned)
install -d -m 0755 /opt/kiln /etc/kiln
aws s3 cp --only-show-errors --region "$KILN_REGION" "$KILN_AGENT_BUNDLE" /opt/kiln/agent.zip
rm -rf /opt/kiln/app && unzip -q /opt/kiln/agent.zip -d /opt/kiln/app
python3 -m venv /opt/kiln/venv
grep -E '^(boto3|botocore)==' /opt/kiln/app/requirements-dev.txt > /opt/kiln/pins.txt
/opt/kiln/venv/bin/pip install -q --no-cache-dir -r /opt/kiln/app/requirements.txt \
  -r /opt/kiln/app/requirements-host.txt -r /opt/kiln/pins.txt

# -- the environment builders/host_config.py reads (HostConfig.from_env)
instance_id=$(imds instance-id)
{
  cat /etc/kiln/host.env.static
  echo "KILN_HOST_XNAME=${instance_id}"
  echo "AWS_REGION=${KILN_REGION}"
  echo "KILN_HOST_WORK_DIR=/var/lib/kiln-host"
  echo "PYTHONPATH=/opt/kiln/app"
} > /etc/kiln/host.env
chmod 0600 /etc/kiln/host.env
install -d -m 0700 /var/lib/kiln-host

# -- kiln-host.service: the agent. Registration: the agent does NOT register itself. It sends
# node heartbeats (the API side records an unregistered node on first contact, xname = the
# instance id) and takes work only while control/build-nodes/<xname>.json says registered
# (builders/control.py), which the API side writes when the node is registered.
# SIGTERM (systemctl stop) is agent.stop: no new work; a job in flight is stopped unanswered
# and the state machine retries it on another host after HeartbeatSeconds. SIGUSR1 is
# agent.finish (the drain below): the job in hand runs to its answer, then the agent exits 75,
# which systemd does not restart.
cat > /etc/systemd/system/kiln-host.service <<'UNIT'
[Unit]
Description=Kiln build-host agent
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
EnvironmentFile=/etc/kiln/host.env
WorkingDirectory=/opt/kiln/app
ExecStart=/opt/kiln/venv/bin/python -m builders.agent
Restart=always
RestartSec=10
RestartPreventExitStatus=75
# SIGTERM to the agent only (it stops its own children), SIGKILL to all after the timeout
KillMode=mixed
TimeoutStopSec=900

[Install]
WantedBy=multi-user.target
UNIT

# -- kiln-drain.service: scale-in drain. The Auto Scaling group's termination lifecycle hook
# holds a terminating instance in Terminating:Wait; IMDS then says target-lifecycle-state
# "Terminated". The watcher asks the agent to finish (SIGUSR1: the job in hand runs to its
# answer, no new one is taken), keeps the hook alive meanwhile (a build may outlast its
# timeout), then completes the lifecycle action, so the instance goes once the job is done.
cat > /usr/local/sbin/kiln-drain <<'DRAIN'
#!/bin/bash
set -u
imds() {
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
  curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
until [ "$(imds autoscaling/target-lifecycle-state || true)" = "Terminated" ]; do
  sleep 10
done
echo "kiln-drain: instance is terminating: the agent finishes its job, then stops"
instance_id=$(imds instance-id)
group=$(imds tags/instance/aws:autoscaling:groupName)
systemctl kill --kill-whom=main --signal=SIGUSR1 kiln-host.service
waited=0
while systemctl is-active --quiet kiln-host.service; do
  sleep 10
  waited=$((waited + 10))
  if [ $((waited % 600)) -eq 0 ]; then  # every 10 minutes: the hook's timeout starts again
    aws autoscaling record-lifecycle-action-heartbeat --region "$AWS_REGION" \
      --lifecycle-hook-name "$KILN_LIFECYCLE_HOOK" --auto-scaling-group-name "$group" \
      --instance-id "$instance_id" || true
  fi
done
for attempt in 1 2 3 4 5; do
  aws autoscaling complete-lifecycle-action --region "$AWS_REGION" \
    --lifecycle-hook-name "$KILN_LIFECYCLE_HOOK" --auto-scaling-group-name "$group" \
    --instance-id "$instance_id" --lifecycle-action-result CONTINUE && exit 0
  sleep $((attempt * 5))
done
echo "kiln-drain: could not complete the lifecycle action: the hook times out instead" >&2
DRAIN
chmod 0755 /usr/local/sbin/kiln-drain

cat > /etc/systemd/system/kiln-drain.service <<'UNIT'
[Unit]
Description=Kiln build host: drain on Auto Scaling termination
After=network-online.target kiln-host.service

[Service]
Type=simple
EnvironmentFile=/etc/kiln/host.env
ExecStart=/usr/local/sbin/kiln-drain
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now kiln-host.service kiln-drain.service
echo "kiln-bootstrap: done"
