# Everything `ship build` runs, in one store path: ship finds each tool under ${toolchain}/bin
# and the CA bundle under ${toolchain}/etc/ssl/certs.
{
  lib,
  stdenv,
  buildEnv,
  rustc,
  cargo,
  clippy,
  rustfmt,
  mold,
  clang,
  sccache,
  cargo-chef,
  cacert,
  git,
  glibc,
}:
buildEnv {
  name = "ship-toolchain";
  paths = [
    rustc
    cargo
    clippy
    rustfmt
    mold
    clang
    sccache
    cargo-chef
    cacert
    git
  ]
  # libc.a for static glibc binaries (`-C target-feature=+crt-static`).
  ++ lib.optionals stdenv.hostPlatform.isLinux [ glibc.static ];
  pathsToLink = [
    "/bin"
    "/etc"
    "/lib"
  ];
}
