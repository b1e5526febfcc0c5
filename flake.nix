{
  description = "ship: build, package and deploy Rust web services reproducibly";

  # Pinned in flake.lock (see ../shared/nix/nixpkgs-pin.md); keep this URL exactly as it is,
  # or Nix re-locks, which needs the network.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (
        system: pkgs:
        let
          toolchain = pkgs.callPackage ./nix/toolchain.nix { };
          ship = pkgs.callPackage ./nix/package.nix { inherit toolchain; };
        in
        {
          inherit toolchain ship;
          default = ship;
        }
      );

      apps = forAllSystems (
        system: pkgs:
        let
          ship = {
            type = "app";
            program = "${self.packages.${system}.ship}/bin/ship";
          };
        in
        {
          inherit ship;
          default = ship;
        }
      );

      devShells = forAllSystems (
        system: pkgs:
        let
          toolchain = self.packages.${system}.toolchain;
        in
        {
          # The toolchain plus the environment `ship build` sets, for working by hand.
          default = pkgs.mkShell {
            packages = [ toolchain ];
            SHIP_TOOLCHAIN = "${toolchain}";
            CARGO_INCREMENTAL = "0";
            RUSTC_WRAPPER = "sccache";
            SSL_CERT_FILE = "${toolchain}/etc/ssl/certs/ca-bundle.crt";
          };
        }
      );

      checks = forAllSystems (
        system: pkgs: {
          inherit (self.packages.${system}) ship toolchain;
        }
      );

      formatter = forAllSystems (system: pkgs: pkgs.nixfmt-tree);
    };
}
