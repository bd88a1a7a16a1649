//! PLACEHOLDER until the wt-a branch lands (its version replaces this file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageContents {
    pub os: Option<OsRelease>,
    pub packages: Vec<DebPackage>,
}
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    pub id: String,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub source: Option<String>,
    pub source_version: Option<String>,
}
impl DebPackage {
    pub fn purl(&self, _os: Option<&OsRelease>) -> String {
        format!(
            "pkg:deb/debian/{}@{}?arch={}",
            self.name, self.version, self.architecture
        )
    }
}
