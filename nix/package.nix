# ship itself, wrapped so that the installed `ship` knows its toolchain.
{
  lib,
  rustPlatform,
  makeWrapper,
  toolchain,
}:
let
  manifest = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  # Only what the build reads: no target/, no examples, no scratch files.
  src = builtins.path {
    name = "ship-source";
    path = ../.;
    filter =
      path: type:
      let
        rel = lib.removePrefix (toString ../. + "/") (toString path);
      in
      rel == "Cargo.toml" || rel == "Cargo.lock" || rel == "src" || lib.hasPrefix "src/" rel;
  };
in
rustPlatform.buildRustPackage {
  pname = manifest.package.name;
  version = manifest.package.version;
  inherit src;
  cargoLock.lockFile = ../Cargo.lock;
  nativeBuildInputs = [ makeWrapper ];
  # The integration tests need podman, a registry and nix; they run in CI, not in the sandbox.
  doCheck = false;
  postInstall = ''
    wrapProgram $out/bin/ship \
      --set-default SHIP_TOOLCHAIN ${toolchain} \
      --prefix PATH : ${lib.makeBinPath [ toolchain ]}
  '';
  meta = {
    description = manifest.package.description;
    mainProgram = "ship";
  };
}
