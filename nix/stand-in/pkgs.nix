# legacyPackages.<system> of the stand-in: the attributes ship's flake uses.
{
  lib,
  system,
  hostTools,
}:
let
  isLinux = builtins.match ".*-linux" system != null;
  shell = "/bin/sh";
  # A derivation from a shell script, run with the host's coreutils (the stand-in builds with
  # `sandbox = false`).
  run =
    name: script: attrs:
    derivation (
      {
        inherit name system;
        builder = shell;
        args = [
          "-c"
          script
        ];
        PATH = "/usr/bin:/bin";
      }
      // attrs
    );
  # A tool package: bin/<b> for each binary, linked to the host's when host-tools.json names it.
  tool =
    name: bins:
    run name (builtins.concatStringsSep "\n" (
      [ "mkdir -p $out/bin" ]
      ++ map (
        b:
        if hostTools ? ${b} then
          "ln -s ${hostTools.${b}} $out/bin/${b}"
        else
          "printf '#!/bin/sh\\necho \"${b}: nixpkgs stand-in\" >&2\\nexit 1\\n' > $out/bin/${b}; chmod +x $out/bin/${b}"
      ) bins
    )) { };
  pkgs = {
    inherit system;
    stdenv.hostPlatform = {
      inherit system isLinux;
      isDarwin = !isLinux;
    };
    lib = lib;

    rustc = tool "rustc" [
      "rustc"
      "rustdoc"
    ];
    cargo = tool "cargo" [ "cargo" ];
    clippy = tool "clippy" [
      "cargo-clippy"
      "clippy-driver"
    ];
    rustfmt = tool "rustfmt" [
      "rustfmt"
      "cargo-fmt"
    ];
    mold = tool "mold" [ "mold" ];
    clang = tool "clang" [
      "clang"
      "clang++"
    ];
    sccache = tool "sccache" [ "sccache" ];
    cargo-chef = tool "cargo-chef" [ "cargo-chef" ];
    git = tool "git" [ "git" ];
    nixfmt-tree = tool "nixfmt-tree" [ "treefmt" ];
    makeWrapper = tool "make-wrapper" [ ];
    cacert = run "cacert" ''
      mkdir -p $out/etc/ssl/certs
      ${
        if hostTools ? ca-bundle then
          "ln -s ${hostTools.ca-bundle} $out/etc/ssl/certs/ca-bundle.crt"
        else
          "echo stand-in > $out/etc/ssl/certs/ca-bundle.crt"
      }
    '' { };
    glibc = {
      static = run "glibc-static" ''
        mkdir -p $out/lib
        ${if hostTools ? libc-a then "ln -s ${hostTools.libc-a} $out/lib/libc.a" else ""}
      '' { };
    };

    # nixpkgs' buildEnv: one tree of symlinks to the given paths' pathsToLink.
    buildEnv =
      {
        name,
        paths,
        pathsToLink ? [ "/" ],
      }:
      run name ''
        mkdir -p $out
        for p in $paths; do
          for d in $pathsToLink; do
            [ -d "$p$d" ] || continue
            (cd "$p$d" && find . -mindepth 1 \( -type f -o -type l \) | while read -r f; do
              mkdir -p "$out$d/$(dirname "$f")"
              ln -sf "$p$d/$f" "$out$d/$f"
            done)
          done
        done
      '' { inherit paths pathsToLink; };

    mkShell =
      {
        packages ? [ ],
        ...
      }@args:
      run "nix-shell" "echo stand-in shell > $out" (
        builtins.removeAttrs args [ "packages" ] // { inherit packages; }
      );

    rustPlatform.buildRustPackage =
      {
        pname,
        version,
        src,
        cargoLock,
        nativeBuildInputs ? [ ],
        postInstall ? "",
        meta ? { },
        ...
      }:
      run "${pname}-${version}" "mkdir -p $out/bin" {
        inherit src nativeBuildInputs postInstall;
        # Fails evaluation, as nixpkgs does, if the lock file is missing.
        cargoLockHash = builtins.hashFile "sha256" cargoLock.lockFile;
      }
      // {
        inherit meta;
      };

    callPackage =
      fn: overrides:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);
  };
in
pkgs
