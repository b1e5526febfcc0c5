# An offline stand-in for nixpkgs, for checking ship's flake where the real nixpkgs cannot be
# fetched or evaluated (no network; Nix 2.8). It has the attribute names ship's flake uses, with
# the same calling conventions, and tiny derivations.
#
# With a host-tools.json beside this file ({"rustc": "/path/to/rustc", ...}, written by the
# tests), each tool package links to this machine's binary, so `nix build .#toolchain` gives a
# real, usable toolchain; without it, every tool is a script that says it is a stand-in.
{
  description = "Offline stand-in for nixpkgs (ship's flake checks and tests)";

  outputs =
    { self }:
    let
      lib = import ./lib.nix;
      hostTools =
        if builtins.pathExists ./host-tools.json then
          builtins.fromJSON (builtins.readFile ./host-tools.json)
        else
          { };
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ] (system: import ./pkgs.nix { inherit lib system hostTools; });
    };
}
