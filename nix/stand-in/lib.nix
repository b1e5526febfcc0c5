# The few nixpkgs.lib functions ship's flake uses, with nixpkgs' semantics.
rec {
  genAttrs =
    names: f:
    builtins.listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );
  makeBinPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/bin") paths);
  optionals = cond: list: if cond then list else [ ];
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  removePrefix =
    prefix: s:
    if hasPrefix prefix s then
      builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s
    else
      s;
}
