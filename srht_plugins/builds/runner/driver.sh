#!/bin/bash
# Runs inside a job's container, as its root (an unprivileged user of the
# runner host), started by systemd-nspawn: sets the job up, then runs its
# tasks in order as the user `build`, each in a shell of its own with `set -ex`.
#
# Everything it and the tasks print goes to the runner (stdout). Lines
# "\n<NONCE>:start:N" and "\n<NONCE>:end:N:CODE" (N = 0 for the setup,
# 1... for the tasks) tell the runner where each part begins and ends; the
# nonce is new for every job. The job's files are in /srht/in (read-only):
#   env            exported variables, sourced by each task
#   packages       one package name a line
#   sources        lines "NAME INSIDE URL REF" (INSIDE: 1 = clone here)
#   secrets        lines "KIND ID MODE PATH" for the files in secret-files/
#   tasks/N        task N's script
#   artifacts      one path a line, copied to /srht/out/I once all tasks passed
#                  (never through a symbolic link)
#   network        none, mirror or full
set -u
NONCE=$1
IN=/srht/in
HOME_DIR=/home/build

mark() { printf '\n%s:%s\n' "$NONCE" "$1"; }
fail_setup() { echo "setup: $1"; mark "end:0:${2:-1}"; exit "${2:-1}"; }

export LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
cd /

echo "Setting up the job."
if ! id build >/dev/null 2>&1; then
  useradd --create-home --uid 1000 --user-group --shell /bin/bash build \
    || fail_setup "could not create the user build"
fi
printf '127.0.0.1 localhost\n127.0.1.1 build\n::1 localhost\n' > /etc/hosts
if [ -d /etc/sudoers.d ]; then
  echo 'build ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/build && chmod 440 /etc/sudoers.d/build
fi

network=$(cat "$IN/network")
case "$network" in
  mirror)
    printf 'Acquire::http::Proxy "http://127.0.0.1:3142";\nAcquire::http::Timeout "30";\n' \
      > /etc/apt/apt.conf.d/01srht-builds-proxy
    : > /etc/resolv.conf ;;
  full)
    echo "nameserver 10.0.2.3" > /etc/resolv.conf ;;
  *)
    : > /etc/resolv.conf ;;
esac

if [ -s "$IN/packages" ]; then
  echo "Installing packages: $(tr '\n' ' ' < "$IN/packages")"
  apt-get update -q || fail_setup "apt-get update failed" 100
  xargs -a "$IN/packages" apt-get install -y -q --no-install-recommends \
    || fail_setup "apt-get install failed" 100
fi

if [ -s "$IN/secrets" ]; then
  install -d -o build -g build -m 700 "$HOME_DIR/.ssh"
  while read -r kind id mode path; do
    case "$kind" in
      file)
        target=${path/#\~/$HOME_DIR}
        install -D -o build -g build -m "$mode" "$IN/secret-files/$id" "$target" \
          || fail_setup "could not write secret $id to $path"
        echo "Secret $id written to $path" ;;
      ssh_key)
        install -o build -g build -m 600 "$IN/secret-files/$id" "$HOME_DIR/.ssh/$id"
        echo "IdentityFile ~/.ssh/$id" >> "$HOME_DIR/.ssh/config"
        chown build:build "$HOME_DIR/.ssh/config"
        echo "SSH key $id added" ;;
      pgp_key)
        if command -v gpg >/dev/null; then
          runuser -u build -- gpg --batch --quiet --import < "$IN/secret-files/$id" \
            || fail_setup "gpg could not import secret $id"
          echo "PGP key $id imported"
        else
          fail_setup "the image has no gpg to import PGP key $id"
        fi ;;
    esac
  done < "$IN/secrets"
fi

if [ -s "$IN/sources" ]; then
  while read -r name inside url ref; do
    if [ "$inside" = 1 ]; then
      echo "Cloning $url"
      runuser -u build -- git clone -q "$url" "$HOME_DIR/$name" || fail_setup "could not clone $url"
      if [ "$ref" != "-" ]; then
        runuser -u build -- git -C "$HOME_DIR/$name" checkout -q "$ref" \
          || fail_setup "$url has no $ref"
      fi
    else
      cp -a "/srht/src/$name" "$HOME_DIR/$name" && chown -R build:build "$HOME_DIR/$name" \
        || fail_setup "could not copy $name into the job"
    fi
  done < "$IN/sources"
fi
mark "end:0:0"

count=$(ls "$IN/tasks" | wc -l)
for n in $(seq 1 "$count"); do
  mark "start:$n"
  (cd "$HOME_DIR" && runuser -u build -- /bin/bash -e "$IN/tasks/$n") 2>&1
  code=$?
  if [ "$code" != 0 ] && df -Pk / | awk 'NR == 2 && $4 == 0 {found = 1} END {exit !found}'; then
    echo "The job's disk is full: it may write $(df -Pm / | awk 'NR == 2 {print $2}') MiB" \
      "([builds] disk)."
  fi
  mark "end:$n:$code"
  if [ "$code" != 0 ]; then
    exit "$code"
  fi
done

if [ -s "$IN/artifacts" ]; then
  i=0
  while IFS= read -r path; do
    case "$path" in
      /*) file=$path ;;
      '~/'*) file=$HOME_DIR/${path#\~/} ;;
      *) file=$HOME_DIR/$path ;;
    esac
    # Never through a link the job made: neither the file nor a folder on
    # its way may be one (cp -P copies a link swapped in meanwhile as a link,
    # which the runner does not read).
    if [ -e "$file" ] && [ "$(realpath -e -- "$file")" != "$(realpath -s -m -- "$file")" ]; then
      echo "artifact $path: not kept, it is (or is in) a symbolic link"
    elif [ -f "$file" ]; then
      cp -P -- "$file" "/srht/out/$i" || echo "artifact $path: could not be kept (too large?)"
    else
      echo "artifact $path: no such file"
    fi
    i=$((i + 1))
  done < "$IN/artifacts"
fi
exit 0
