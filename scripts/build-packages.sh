#!/usr/bin/env bash
# `make packages`: build the .deb and the .rpm into dist/ from one tree and one version
# (ovs_runtime/__init__.py). Reproducible: SOURCE_DATE_EPOCH defaults to the last
# commit's time, and the build tree is made of the tracked files only.
set -euo pipefail
# Debian's own Python and tools only, whatever else is on PATH (pyenv, a venv).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd "$(dirname "$0")/.."
top=$PWD
version=$(/usr/bin/python3 -c 'import re,sys; print(re.search(r"__version__ = \"(.+)\"", open("ovs_runtime/__init__.py").read()).group(1))')
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
build=${OVSR_BUILD_DIR:-$top/build/packages}
dist=${OVSR_DIST_DIR:-$top/dist}
rm -rf "$build"
mkdir -p "$build" "$dist"

# One source tree, from the files git tracks (plus uncommitted edits to them).
src=$build/ovs-runtime-$version
mkdir -p "$src"
git ls-files -z | grep -zv '^packaging/debian/' | xargs -0 cp --parents -t "$src"
if [ -n "${OVSR_VERSION:-}" ] && [ "$OVSR_VERSION" != "$version" ]; then
  # A differently numbered build of the same tree (upgrade tests).
  sed -i "s/^__version__ = .*/__version__ = \"$OVSR_VERSION\"/" "$src/ovs_runtime/__init__.py"
  mv "$src" "$build/ovs-runtime-$OVSR_VERSION"
  version=$OVSR_VERSION
  src=$build/ovs-runtime-$version
fi

# --- Debian -------------------------------------------------------------------------
cp -r packaging/debian "$src/debian"
cp packaging/systemd/ovs-runtime.service "$src/debian/ovs-runtime.service"
cp packaging/config/ovs-runtime.sysusers "$src/debian/ovs-runtime.sysusers"
changelog_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
cat > "$src/debian/changelog" <<CHANGELOG
ovs-runtime ($version) unstable; urgency=medium

  * Release $version; see CHANGELOG.md for what it contains.

 -- ovs-runtime maintainers <maintainers@ovs-runtime.example.org>  $changelog_date
CHANGELOG
(cd "$src" && dpkg-buildpackage -us -uc -b --no-sign >"$build/deb-build.log" 2>&1) || {
  tail -40 "$build/deb-build.log" >&2
  exit 1
}
cp "$build/ovs-runtime_${version}_all.deb" "$dist/"
echo "built $dist/ovs-runtime_${version}_all.deb"

# --- RPM ----------------------------------------------------------------------------
rpmtop=$build/rpm
mkdir -p "$rpmtop/SOURCES" "$rpmtop/SPECS"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$build" --exclude=debian -czf "$rpmtop/SOURCES/ovs-runtime-$version.tar.gz" "ovs-runtime-$version"
rpmbuild -bb packaging/rpm/ovs-runtime.spec \
  --define "_topdir $rpmtop" --define "ovsr_version $version" \
  --define "use_source_date_epoch_as_buildtime 1" \
  --define "clamp_mtime_to_source_date_epoch 1" \
  --define "_buildhost reproducible" >"$build/rpm-build.log" 2>&1 || {
  tail -40 "$build/rpm-build.log" >&2
  exit 1
}
cp "$rpmtop"/RPMS/noarch/ovs-runtime-"$version"-*.noarch.rpm "$dist/"
echo "built $dist/$(basename "$rpmtop"/RPMS/noarch/ovs-runtime-"$version"-*.noarch.rpm)"
